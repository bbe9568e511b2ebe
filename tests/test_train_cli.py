"""End-to-end runs of train.py as a subprocess, on a slice of MNIST.

The runs start together, once per module: one trains both networks and exports
them, the others are refused (bad flags, missing data, folders in the way) or
print the help. A second full run, after the first, re-exports with
--overwrite. TensorFlow's own log level is left unset in the children so that
what train.py does about TensorFlow's start-up messages is tested too.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rbf_tf import datasets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "train.py")
NETWORKS = ("gaussian", "dense")
EPOCHS = 2
UNITS = 32
TRAIN_FLAGS = ("--layer=both", "--train_examples=2000", f"--units={UNITS}",
               f"--epochs={EPOCHS}", "--batch_size=32", "--noplots")
NOISE = ("onednn", "cuda", "absl::initializelog")
TIMEOUT = 300

BAD_FLAGS = {
    "units_zero": ["--units=0"],
    "layer_unknown": ["--layer=foo"],
    "epochs_negative": ["--epochs=-1"],
    "dataset_unknown": ["--dataset=cifar"],
    "gaussian_rate_zero": ["--gaussian_learning_rate=0"],
    "width_scale_infinite": ["--width_scale=inf"],
    "seeds_repeated": ["--seeds=1,1"],
    "seeds_negative": ["--seeds=-1,2"],
}


def start(args, cwd):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}
    return subprocess.Popen([sys.executable, TRAIN, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(process):
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    return {"returncode": process.returncode, "stdout": stdout, "stderr": stderr}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    cwd = str(root)
    (root / "foreign").mkdir()
    (root / "foreign" / "thesis.txt").write_text("years of work")
    (root / "exports_in_the_way").mkdir()
    (root / "exports_in_the_way" / "model").write_text("an older export")

    processes = {
        "both": start([*TRAIN_FLAGS, "--output_dir=out", "--export_dir=exports"],
                      cwd),
        "helpfull": start(["--helpfull"], cwd),
        "missing_data": start([*TRAIN_FLAGS, "--data_dir=no_such_dir",
                               "--output_dir=out_missing"], cwd),
        "foreign": start([*TRAIN_FLAGS, "--output_dir=foreign"], cwd),
        "too_few_examples": start(["--layer=gaussian", "--train_examples=5",
                                   "--units=50", "--output_dir=out_small"], cwd),
        "export_in_the_way": start([*TRAIN_FLAGS, "--output_dir=out_refused",
                                    "--export_dir=exports_in_the_way"], cwd),
    }
    for name, flags in BAD_FLAGS.items():
        processes[name] = start([*flags, "--output_dir=out_bad"], cwd)
    found = {name: finish(process) for name, process in processes.items()}

    exports = root / "exports"
    found["inodes_before"] = {name: os.stat(exports / name).st_ino
                              for name in NETWORKS if (exports / name).exists()}
    found["overwrite"] = finish(start(
        [*TRAIN_FLAGS, "--output_dir=out", "--export_dir=exports", "--overwrite"],
        cwd))
    found["inodes_after"] = {name: os.stat(exports / name).st_ino
                             for name in NETWORKS if (exports / name).exists()}
    found["root"] = root
    return found


@pytest.fixture(scope="module")
def both(runs):
    run = runs["both"]
    assert run["returncode"] == 0, run["stderr"][-3000:]
    return run


@pytest.fixture(scope="module")
def results(runs, both):
    with open(runs["root"] / "out" / "results.json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def records(results):
    return {run["layer"]: run for run in results["runs"]}


def events(summary_dir):
    """{tag: (plugin name, {step: value array})} of every event file in a folder."""
    found = {}
    for name in sorted(os.listdir(summary_dir)):
        path = os.path.join(summary_dir, name)
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                plugin, steps = found.setdefault(value.tag, [None, {}])
                if value.metadata.plugin_data.plugin_name:
                    found[value.tag][0] = value.metadata.plugin_data.plugin_name
                steps[event.step] = tf.make_ndarray(value.tensor)
    return found


def assert_refused(run):
    """Exit status 1 and exactly one line on stderr, no traceback."""
    assert run["returncode"] == 1, run
    lines = run["stderr"].splitlines()
    assert len(lines) == 1, run["stderr"]
    assert lines[0].startswith("train.py: error:")
    assert "Traceback" not in run["stdout"] + run["stderr"]
    return lines[0]


# The successful run.


def test_comparison_table_is_printed(both):
    lines = both["stdout"].splitlines()
    header = [i for i, line in enumerate(lines) if line.startswith("network ")]
    assert len(header) == 1, both["stdout"]
    table = lines[header[0]:header[0] + 4]
    assert table[0].split()[:4] == ["network", "hidden", "readout", "total"]
    assert set(table[1]) == {"-", " "}
    assert [row.split()[0] for row in table[2:]] == list(NETWORKS)


def test_results_json_has_the_documented_fields(results):
    assert [run["layer"] for run in results["runs"]] == list(NETWORKS)
    for run in results["runs"]:
        assert run["units"] == UNITS
        assert set(run["params"]) >= {"hidden", "readout", "total"}
        params = run["params"]
        assert params["total"] == params["hidden"] + params["readout"]
        assert [r["epoch"] for r in run["epochs"]] == list(range(1, EPOCHS + 1))
        for record in run["epochs"]:
            for key in ("train_loss", "test_loss", "test_accuracy", "seconds"):
                assert isinstance(record[key], float), key
        accuracies = [r["test_accuracy"] for r in run["epochs"]]
        assert run["final_test_accuracy"] == accuracies[-1]
        assert run["best_test_accuracy"] == max(accuracies)
        assert run["flags"]["units"] == UNITS and run["flags"]["layer"] == "both"


def test_parameter_counts_follow_the_formulas(records):
    n, m, k = 784, UNITS, 10
    assert records["gaussian"]["params"] == {
        "hidden": n * m + 2 * m, "readout": m * k + k,
        "total": n * m + 2 * m + m * k + k}
    assert records["dense"]["params"]["hidden"] == n * m + m


@pytest.mark.parametrize("network", NETWORKS)
def test_loss_falls_and_accuracy_beats_chance(records, network):
    first, last = records[network]["epochs"][0], records[network]["epochs"][-1]
    assert last["train_loss"] < first["train_loss"]
    assert last["test_loss"] < first["test_loss"]
    assert records[network]["final_test_accuracy"] > 0.3  # Chance is 0.1.


def test_no_tensorflow_start_up_noise(both):
    for stream in ("stdout", "stderr"):
        for line in both[stream].splitlines():
            assert not any(word in line.lower() for word in NOISE), line


@pytest.mark.parametrize("network", NETWORKS)
def test_summaries_hold_the_scalars_of_each_epoch(runs, records, network):
    found = events(runs["root"] / "out" / network / "summaries")
    for key in ("train_loss", "test_loss", "test_accuracy"):
        plugin, steps = found[key]
        assert plugin == "scalars"
        assert sorted(steps) == list(range(1, EPOCHS + 1))
        for record in records[network]["epochs"]:
            assert float(steps[record["epoch"]]) == pytest.approx(record[key],
                                                                  rel=1e-6)


def test_summaries_hold_the_gaussian_centers_as_images(runs):
    plugin, steps = events(runs["root"] / "out" / "gaussian" / "summaries")["centers"]
    assert plugin == "images"
    assert sorted(steps) == list(range(1, EPOCHS + 1))
    images = steps[EPOCHS]
    assert list(images[:2]) == [b"28", b"28"]  # Width and height.
    assert len(images) == 2 + UNITS
    assert all(png.startswith(b"\x89PNG") for png in images[2:])


def test_dense_summaries_have_no_centers(runs):
    assert "centers" not in events(runs["root"] / "out" / "dense" / "summaries")


@pytest.fixture(scope="module")
def mnist():
    return datasets.load_dataset("mnist")


@pytest.mark.parametrize("network", NETWORKS)
def test_exports_serve_the_trained_networks(runs, both, records, mnist, network):
    exported = [line for line in both["stdout"].splitlines()
                if line.startswith(f"{network}: exported ")]
    assert len(exported) == 1 and exported[0].endswith(f" to exports/{network}")
    data = mnist
    path = runs["root"] / "exports" / network
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    classes = np.concatenate([
        serve(images=tf.constant(data.test_images[i:i + 1000]))["classes"].numpy()
        for i in range(0, len(data.test_images), 1000)])
    accuracy = float(np.mean(classes == data.test_labels))
    assert accuracy == pytest.approx(records[network]["final_test_accuracy"],
                                     abs=1e-4)


def test_rerun_with_overwrite_replaces_the_exports_without_training(runs):
    run = runs["overwrite"]
    assert run["returncode"] == 0, run["stderr"][-3000:]
    for network in NETWORKS:
        assert f"{network}: already trained for {EPOCHS} epochs" in run["stdout"]
        assert f"{network}: exported " in run["stdout"]
    assert "epoch 1/" not in run["stdout"]
    assert sorted(runs["inodes_after"]) == list(sorted(NETWORKS))
    for network in NETWORKS:
        assert runs["inodes_after"][network] != runs["inodes_before"][network]


# Refusals.


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_flag_is_one_line_and_status_one(runs, case):
    line = assert_refused(runs[case])
    flag = BAD_FLAGS[case][0].split("=")[0]
    assert flag in line
    assert runs[case]["stdout"] == ""
    assert not (runs["root"] / "out_bad").exists()


def test_missing_data_dir_is_one_line_and_status_one(runs):
    line = assert_refused(runs["missing_data"])
    assert "no_such_dir" in line
    assert not (runs["root"] / "out_missing").exists()


def test_a_failure_during_training_is_one_line_and_status_one(runs):
    line = assert_refused(runs["too_few_examples"])
    assert "cannot choose 50 centers from 5 examples" in line


def test_foreign_output_dir_is_refused_and_left_alone(runs):
    line = assert_refused(runs["foreign"])
    assert "not empty" in line and "--overwrite" in line
    foreign = runs["root"] / "foreign"
    assert os.listdir(foreign) == ["thesis.txt"]
    assert (foreign / "thesis.txt").read_text() == "years of work"


def test_non_empty_export_dir_is_refused_before_training(runs):
    line = assert_refused(runs["export_in_the_way"])
    assert "exports_in_the_way" in line and "--overwrite" in line
    assert not (runs["root"] / "out_refused").exists()  # Nothing was started.
    in_the_way = runs["root"] / "exports_in_the_way"
    assert os.listdir(in_the_way) == ["model"]
    assert (in_the_way / "model").read_text() == "an older export"


def test_helpfull_exits_zero_and_documents_the_flags(runs):
    run = runs["helpfull"]
    assert run["returncode"] == 0, run["stderr"]
    for flag in ("layer", "units", "epochs", "batch_size", "output_dir",
                 "export_dir", "restart", "overwrite", "checkpoint_every_steps",
                 "train_examples", "data_dir", "dataset", "seed"):
        # Boolean flags are listed as --[no]flag.
        assert f"--{flag}:" in run["stdout"] or f"--[no]{flag}:" in run["stdout"], flag
    assert "SavedModel" in run["stdout"]


# Several seeds, a parameter-matched dense network, other initialisations.


def test_seeds_and_matched_parameters_are_summarised(tmp_path):
    run = finish(start(["--layer=both", "--train_examples=600", "--units=16",
                        "--epochs=1", "--batch_size=50", "--seeds=0,1",
                        "--match_params", "--center_init=kmeans",
                        "--width_init=per_class", "--noplots",
                        "--output_dir=out"], str(tmp_path)))
    assert run["returncode"] == 0, run["stderr"]
    with open(tmp_path / "out" / "results.json") as f:
        results = json.load(f)
    names = [r["name"] for r in results["runs"]]
    assert names == ["gaussian-seed0", "dense-seed0", "dense-params-seed0",
                     "gaussian-seed1", "dense-seed1", "dense-params-seed1"]
    for run_record in results["runs"]:
        if run_record["layer"] == "gaussian":
            assert run_record["config"]["center_init"] == "kmeans"
            assert run_record["config"]["width_init"] == "per_class"
    summary = results["summary"]
    assert set(summary) == {"gaussian", "dense", "dense-params"}
    finals = [r["final_test_accuracy"] for r in results["runs"]
              if r["name"].startswith("gaussian-")]
    stats = summary["gaussian"]["final_test_accuracy"]
    assert summary["gaussian"]["seeds"] == 2
    assert stats["mean"] == pytest.approx(sum(finals) / 2)
    assert stats["std"] == pytest.approx(abs(finals[0] - finals[1]) / 2)
    # 16 Gaussian units: 784*16 + 2*16 + 16*10 + 10 = 12,746 parameters.
    assert summary["dense-params"]["params"]["total"] == pytest.approx(12746, abs=400)
    assert "±" in run["stdout"]
