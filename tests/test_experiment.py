"""Tests of the experiment runner: output folders, summaries, the table."""

import json
import os

import pytest

from rbf_tf import experiment
from rbf_tf.experiment import OutputDirError, prepare_output_dir

SETTINGS = {"layer": "both", "units": 10}


def test_new_folder_is_created_and_stamped(tmp_path):
    path = tmp_path / "run"
    assert prepare_output_dir(str(path), SETTINGS) is False
    with open(path / "run.json") as f:
        assert json.load(f) == SETTINGS


def test_same_settings_resume(tmp_path):
    prepare_output_dir(str(tmp_path), SETTINGS)
    assert prepare_output_dir(str(tmp_path), dict(SETTINGS)) is True


def test_other_settings_are_refused_naming_the_difference(tmp_path):
    prepare_output_dir(str(tmp_path), SETTINGS)
    with pytest.raises(OutputDirError, match="units: 10 then, 20 now.*--restart"):
        prepare_output_dir(str(tmp_path), {**SETTINGS, "units": 20})


def test_restart_removes_only_what_a_run_wrote(tmp_path):
    prepare_output_dir(str(tmp_path), SETTINGS)
    written = ["results.json", "dense/checkpoints/checkpoint",
               "dense/checkpoints/ckpt-1.index",
               "dense/summaries/events.out.tfevents.1",
               "plots/learning_curves.png", "plots/dense_centers.png"]
    mine = ["notes.txt", "dense/checkpoints/mydata", "notes/summaries/thesis.txt",
            "plots/myfig.png", "checkpoints/other"]
    for name in written + mine:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    assert prepare_output_dir(str(tmp_path), {**SETTINGS, "units": 20},
                              restart=True) is False
    for name in written:
        assert not (tmp_path / name).exists(), name
    for name in mine:
        assert (tmp_path / name).read_text() == name
    assert not (tmp_path / "dense" / "summaries").exists()
    with open(tmp_path / "run.json") as f:
        assert json.load(f)["units"] == 20


def test_unreadable_stamp_is_refused_naming_the_file(tmp_path):
    (tmp_path / "run.json").write_text("{broken")
    with pytest.raises(OutputDirError, match="cannot read .*run.json.*--restart"):
        prepare_output_dir(str(tmp_path), SETTINGS)


def test_foreign_folder_is_refused_and_left_alone(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(OutputDirError, match="not empty.*'thesis.tex'.*--overwrite"):
        prepare_output_dir(str(tmp_path), SETTINGS)
    assert os.listdir(tmp_path) == ["thesis.tex"]
    assert prepare_output_dir(str(tmp_path), SETTINGS, overwrite=True) is False
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(OutputDirError, match="not a directory"):
        prepare_output_dir(str(path), SETTINGS)


def fake_run(name, layer, final, seconds_to_target):
    return {"name": name, "layer": layer, "units": 10,
            "params": {"hidden": 1, "readout": 2, "total": 3},
            "final_test_accuracy": final, "best_test_accuracy": final,
            "seconds_to_target": seconds_to_target,
            "epochs_to_target": None if seconds_to_target is None else 2,
            "seconds_per_epoch": 1.0}


def test_summary_gives_mean_and_spread_over_seeds():
    runs = [fake_run("gaussian-seed0", "gaussian", 0.97, 10.0),
            fake_run("gaussian-seed1", "gaussian", 0.99, None),
            fake_run("dense-seed0", "dense", 0.98, 5.0)]
    summary = experiment.summarize_runs(runs)
    assert set(summary) == {"gaussian", "dense"}
    gaussian = summary["gaussian"]
    assert gaussian["seeds"] == 2
    assert gaussian["final_test_accuracy"]["mean"] == pytest.approx(0.98)
    assert gaussian["final_test_accuracy"]["std"] == pytest.approx(0.01)
    assert gaussian["seconds_to_target"] == {"mean": 10.0, "std": 0.0, "reached": 1}
    table = experiment.format_table(summary)
    assert "98.00% ±1.00" in table
    assert "(1/2)" in table


def test_matched_dense_width_equalises_parameter_counts():
    n, k = 784, 10
    for m in (10, 100, 1000):
        d = experiment.matched_dense_units(m, n, k)
        gaussian = n * m + 2 * m + m * k + k
        assert abs((n * d + d + d * k + k) - gaussian) <= (n + 1 + k) / 2
    assert experiment.matched_dense_units(1000, n, k) == 1001


def test_configs_name_networks_by_layer_and_seed():
    base = {"units": 8, "epochs": 1}
    names = [name for name, _ in experiment.configs_for(
        ["gaussian", "dense"], [0, 1], base, {"width_scale": 0.5},
        match_params=True)]
    assert names == ["gaussian-seed0", "dense-seed0", "dense-params-seed0",
                     "gaussian-seed1", "dense-seed1", "dense-params-seed1"]
    single = experiment.configs_for(["gaussian"], [3], base, {"width_scale": 0.5})
    (name, config), = single
    assert name == "gaussian" and config.seed == 3 and config.width_scale == 0.5
    dense = experiment.configs_for(["dense"], [0], base, {"width_scale": 0.5})
    assert dense[0][1].width_scale == 1.0  # Gaussian fields stay Gaussian.
