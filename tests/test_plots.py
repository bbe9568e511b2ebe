"""PNG figures: written with matplotlib, skipped cleanly without it."""

import sys

import numpy as np

from rbf_tf import datasets, experiment, plots
from rbf_tf.training import NetworkConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_results(tmp_path):
    data = datasets.take_examples(datasets.load_dataset("mnist"), 500, seed=0)
    networks = [(name, NetworkConfig(layer=name, units=12, epochs=2, batch_size=50,
                                     sigma_sample_size=20))
                for name in ("gaussian", "dense")]
    return experiment.run_experiment(networks, data, str(tmp_path))


def test_curves_and_centers_are_written_as_png(tmp_path):
    results = small_results(tmp_path)
    written = plots.write_plots(results, str(tmp_path))
    names = sorted(p.split("/")[-1] for p in written)
    assert names == ["gaussian_centers.png", "learning_curves.png"]
    for path in written:
        with open(path, "rb") as f:
            assert f.read(8) == PNG_MAGIC


def test_without_matplotlib_nothing_is_written(tmp_path, monkeypatch):
    results = {"runs": [{"name": "dense", "layer": "dense",
                         "epochs": [{"epoch": 1, "train_loss": 1.0,
                                     "test_loss": 1.0, "test_accuracy": 0.5}]}]}
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert plots.write_plots(results, str(tmp_path)) == []
    assert not (tmp_path / "plots").exists() or not any((tmp_path / "plots").iterdir())


def test_center_grid_shows_the_learned_centers(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.random.default_rng(0).random((13, 28, 28, 1))
    path = plots._center_grid(plt, images, "g", str(tmp_path))
    assert path.endswith("g_centers.png")
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
