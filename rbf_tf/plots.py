"""PNG figures of an experiment: learning curves and learned centers.

Needs matplotlib, an optional extra (`pip install 'rbf_tf[plots]'`); without it
`write_plots` writes nothing and returns an empty list.
"""

import math
import os
from typing import Dict, List

import numpy as np
import tensorflow as tf

from rbf_tf.experiment import group_key
from rbf_tf.training import center_images

# Where train_network's checkpoint keeps a Gaussian network's centers.
MU_KEY = "model/hidden/mu/.ATTRIBUTES/VARIABLE_VALUE"


def write_plots(results: Dict, output_dir: str) -> List[str]:
    """Writes learning_curves.png and, per Gaussian network, <name>_centers.png.

    Args:
      results: as returned by `rbf_tf.experiment.run_experiment`.
      output_dir: the experiment's folder; figures go to its plots/ folder.

    Returns:
      The paths written; empty when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    plot_dir = os.path.join(output_dir, "plots")
    os.makedirs(plot_dir, exist_ok=True)
    written = [_learning_curves(plt, results["runs"], plot_dir)]
    for run in results["runs"]:
        if run["layer"] != "gaussian":
            continue
        checkpoint = tf.train.latest_checkpoint(
            os.path.join(output_dir, run["name"], "checkpoints"))
        if checkpoint is None:
            continue
        images = center_images(tf.train.load_variable(checkpoint, MU_KEY), 100)
        if images is not None:
            written.append(_center_grid(plt, images, run["name"], plot_dir))
    return written


def _save(plt, figure, path: str) -> str:
    tmp = path + ".tmp.png"
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    os.replace(tmp, path)
    return path


def _learning_curves(plt, runs: List[Dict], plot_dir: str) -> str:
    """Test accuracy and losses per epoch; one colour per network, all seeds."""
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
    colours = {}
    for run in runs:
        group = group_key(run)
        first = group not in colours
        colour = colours.setdefault(group, f"C{len(colours)}")
        epochs = [r["epoch"] for r in run["epochs"]]
        loss_axis.plot(epochs, [r["test_loss"] for r in run["epochs"]], color=colour,
                       label=f"{group} test" if first else None)
        loss_axis.plot(epochs, [r["train_loss"] for r in run["epochs"]], "--",
                       color=colour, label=f"{group} train" if first else None)
        accuracy_axis.plot(epochs, [100 * r["test_accuracy"] for r in run["epochs"]],
                           color=colour, label=group if first else None)
    loss_axis.set(xlabel="epoch", ylabel="cross-entropy", yscale="log",
                  title="loss")
    accuracy_axis.set(xlabel="epoch", ylabel="test accuracy (%)",
                      title="test accuracy (one line per seed)")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    figure.tight_layout()
    return _save(plt, figure, os.path.join(plot_dir, "learning_curves.png"))


def _center_grid(plt, images: np.ndarray, name: str, plot_dir: str) -> str:
    columns = 10
    rows = math.ceil(len(images) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns, rows))
    for index, axis in enumerate(np.ravel(axes)):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index, ..., 0], cmap="gray")
    figure.suptitle(f"{name}: learned centers mu (first {len(images)})")
    return _save(plt, figure, os.path.join(plot_dir, f"{name}_centers.png"))
