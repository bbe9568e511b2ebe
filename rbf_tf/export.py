"""SavedModel exports of trained networks, for serving and for reuse in graphs.

`export_classifier` writes a trained `Classifier` as a SavedModel whose
`serving_default` signature maps float32 images to class probabilities and
classes. It loads with `tf.saved_model.load` in a process that never imports
rbf_tf:

    loaded = tf.saved_model.load(export_dir)
    outputs = loaded.signatures["serving_default"](images=images)  # [B, 784]
    outputs["probabilities"]  # [B, 10] float32
    outputs["classes"]  # [B] int64

Images of shape [None, 28, 28] are accepted too, by a second signature,
`serving_2d`, with the same outputs. Both refuse, with an error rather than an
answer, a tensor of another dtype or shape and pixels outside [0, 1] (see
`ServingModule`).

`export_module` writes a bare layer, such as a `GaussianRBF`, whose reloaded
`forward` can be called inside another model's graph and trained further.

Both write atomically: the SavedModel is written to a temporary folder beside
`export_dir` and renamed into place, so a process killed while exporting never
leaves a partial export under `export_dir`. An existing non-empty `export_dir`
is replaced only when asked to.

`export_networks` exports the networks that `train.py` trained, restoring each
from its latest checkpoint. It does not depend on how the training was
distributed; under a multi-worker strategy, call it from the chief only.
"""

import os
import shutil
import tempfile
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from rbf_tf import training
from rbf_tf.base import Layer
from rbf_tf.classifier import Classifier
from rbf_tf.training import NetworkConfig

SERVING_SIGNATURE = "serving_default"
# The second signature of a classifier with square images, e.g. [None, 28, 28].
SERVING_2D_SIGNATURE = "serving_2d"


# Where train_network's checkpoint keeps the readout bias, [num_classes].
READOUT_BIAS_KEY = "model/readout/bias/.ATTRIBUTES/VARIABLE_VALUE"


class ExportDirError(ValueError):
    """The export directory cannot be written as asked."""


class ServingModule(tf.Module):
    """The inference functions of a trained `Classifier`, ready to export.

    `serve` takes float32 images of shape [None, input_dim] (784 for MNIST).
    When input_dim is a square side * side, `serve_2d` takes the same images as
    [None, side, side] (28 x 28 for MNIST); other models have no `serve_2d`.
    Both return

        {"probabilities": [None, num_classes] float32 softmax of the logits,
         "classes": [None] int64 argmax of the logits}.

    The checks run inside the graph, so they hold for every caller of the
    SavedModel, including ones that bypass TensorFlow's Python signature
    checks: a tensor of another dtype or shape is refused, and so are pixel
    values outside [0, 1] (which is how raw 0..255 pixels, for example a uint8
    array that TensorFlow converted to float32, are caught) and NaNs. A model
    of dtype float64 computes in float64 and returns float32 probabilities.

    Attributes:
      model: the wrapped `Classifier`; its variables are saved with the export.
      serve: `tf.function` of one [None, input_dim] float32 tensor "images".
      serve_2d: `tf.function` of one [None, side, side] float32 tensor "images",
        or None when input_dim is not a square.
    """

    def __init__(self, model: Classifier, name: Optional[str] = None):
        """Wraps `model`.

        Args:
          model: a trained `Classifier`.
          name: module name; default "serving_module".

        Raises:
          TypeError: if `model` is not a `Classifier`.
        """
        if not isinstance(model, Classifier):
            raise TypeError(
                f"model must be an rbf_tf Classifier, got {type(model).__name__}."
            )
        super().__init__(name=name)
        self.model = model
        input_dim = model.input_dim
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([None, input_dim], tf.float32, "images")],
        )
        side = training.image_grid_side(input_dim)
        self.serve_2d = None
        if side is not None:
            spec = tf.TensorSpec([None, side, side], tf.float32, "images")
            self.serve_2d = tf.function(self._serve_2d, input_signature=[spec])

    def serving_signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
        """The signatures to export: serving_default, and serving_2d if any."""
        signatures = {SERVING_SIGNATURE: self.serve.get_concrete_function()}
        if self.serve_2d is not None:
            signatures[SERVING_2D_SIGNATURE] = self.serve_2d.get_concrete_function()
        return signatures

    def _serve(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        images = tf.ensure_shape(images, [None, self.model.input_dim])
        return self._predict(images)

    def _serve_2d(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        side = training.image_grid_side(self.model.input_dim)
        images = tf.ensure_shape(images, [None, side, side])
        return self._predict(tf.reshape(images, [-1, self.model.input_dim]))

    def _predict(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        checks = [
            tf.debugging.assert_greater_equal(
                images, 0.0, message="images must lie in [0, 1] (scaled pixels)"),
            tf.debugging.assert_less_equal(
                images, 1.0, message="images must lie in [0, 1] (scaled pixels)"),
        ]
        with tf.control_dependencies(checks):
            logits = self.model.forward(tf.cast(images, self.model.dtype))  # [B, k]
        return {
            "probabilities": tf.cast(tf.nn.softmax(logits), tf.float32),
            "classes": tf.argmax(logits, axis=1, output_type=tf.int64),  # [B]
        }


class ModuleExport(tf.Module):
    """A bare layer with a `serving_default` signature, ready to export.

    The reloaded object has the layer's variables under `layer` (for a
    `GaussianRBF`: `layer.mu`, `layer.sigma`, `layer.w`) and `forward`, the
    layer's [None, input_dim] -> [None, units] function in the layer's dtype,
    which can be called inside another model's `tf.function` or
    `tf.GradientTape`; gradients reach the reloaded variables. The signature
    returns {"outputs": [None, units]}.

    Attributes:
      layer: the wrapped layer.
      forward: `tf.function` of one [None, input_dim] tensor "x".
    """

    def __init__(self, layer: Layer, name: Optional[str] = None):
        """Wraps `layer`.

        Raises:
          TypeError: if `layer` is not an rbf_tf layer.
        """
        if not isinstance(layer, Layer):
            raise TypeError(
                f"layer must be an rbf_tf layer (GaussianRBF, Dense or Classifier), "
                f"got {type(layer).__name__}."
            )
        super().__init__(name=name)
        self.layer = layer
        spec = tf.TensorSpec([None, layer.input_dim], layer.dtype, "x")
        self.forward = tf.function(self._forward, input_signature=[spec])

    def serving_signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
        """The signature to export: serving_default, returning {"outputs"}."""
        spec = tf.TensorSpec([None, self.layer.input_dim], self.layer.dtype, "x")
        serving = tf.function(lambda x: {"outputs": self.forward(x)},
                              input_signature=[spec])
        return {SERVING_SIGNATURE: serving.get_concrete_function()}

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        x = tf.ensure_shape(x, [None, self.layer.input_dim])
        return self.layer.forward(x)  # [B, units]


def check_export_dir(export_dir: str, overwrite: bool = False,
                     remedy: str = "pass overwrite=True to replace it") -> None:
    """Checks that `export_dir` can take an export, before any work is done.

    Args:
      export_dir: the folder an export will be written to.
      overwrite: whether an existing non-empty folder may be replaced.
      remedy: how the caller allows replacing, named in the error.

    Raises:
      ExportDirError: if `export_dir` is a file, or a non-empty folder and
        `overwrite` is False.
    """
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise ExportDirError(
            f"export directory {export_dir} exists and is not a directory."
        )
    entries = sorted(os.listdir(export_dir)) if os.path.isdir(export_dir) else []
    if entries and not overwrite:
        raise ExportDirError(
            f"export directory {export_dir} is not empty ({len(entries)} entries, "
            f"e.g. {entries[0]!r}); choose another directory or {remedy}."
        )


def export_classifier(model: Classifier, export_dir: str,
                      overwrite: bool = False) -> str:
    """Exports a trained classifier for serving, atomically.

    The SavedModel has the signatures of `ServingModule`: `serving_default`
    taking float32 "images" [None, input_dim] and, for square images,
    `serving_2d` taking [None, side, side]; both return "probabilities"
    [None, num_classes] float32 and "classes" [None] int64.

    Args:
      model: a `Classifier`, e.g. as built by `training.build_network`.
      export_dir: the folder to write; its parent is created if needed.
      overwrite: replace an existing non-empty `export_dir`.

    Returns:
      `export_dir`.

    Raises:
      TypeError: if `model` is not a `Classifier`.
      ExportDirError: as `check_export_dir`.
    """
    module = ServingModule(model)
    save_atomically(module, export_dir, module.serving_signatures(), overwrite)
    return export_dir


def export_module(layer: Layer, export_dir: str, overwrite: bool = False) -> str:
    """Exports a bare layer, e.g. a `GaussianRBF`, for use in other graphs.

    See `ModuleExport` for what the reloaded object offers. Example:

        from rbf_tf import export

        export.export_module(rbf, "/tmp/rbf")
        loaded = tf.saved_model.load("/tmp/rbf")  # Needs no rbf_tf.
        with tf.GradientTape() as tape:
            y = loaded.forward(x)  # [B, units]
        tape.gradient(y, loaded.layer.mu)

    Args:
      layer: an rbf_tf layer (`GaussianRBF`, `Dense` or `Classifier`).
      export_dir: the folder to write; its parent is created if needed.
      overwrite: replace an existing non-empty `export_dir`.

    Returns:
      `export_dir`.

    Raises:
      TypeError: if `layer` is not an rbf_tf layer.
      ExportDirError: as `check_export_dir`.
    """
    module = ModuleExport(layer)
    save_atomically(module, export_dir, module.serving_signatures(), overwrite)
    return export_dir


def save_atomically(module: tf.Module, export_dir: str, signatures: Dict,
                    overwrite: bool = False) -> None:
    """`tf.saved_model.save` into a temporary folder, then renamed into place.

    The temporary folder is a hidden sibling of `export_dir`, so the rename
    stays on one file system. Its files are flushed to disk before the rename.
    When an existing export is replaced, it is first renamed aside and deleted
    after the new one is in place; a kill in the instant between the two renames
    leaves `export_dir` missing and the previous export beside it, never a mix.
    A process killed before its rename leaves its temporary folder
    (`.<name>.tmp-*`) behind, complete or not; it can be deleted.

    Raises:
      ExportDirError: as `check_export_dir`.
    """
    check_export_dir(export_dir, overwrite)
    export_dir = os.path.abspath(export_dir)
    parent, base = os.path.split(export_dir)
    os.makedirs(parent, exist_ok=True)

    staging = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private.
        tf.saved_model.save(module, staging, signatures=signatures)
        _sync_tree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    if os.path.isdir(export_dir) and os.listdir(export_dir):
        previous = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
        os.replace(export_dir, previous)  # Onto the empty folder just made.
        os.replace(staging, export_dir)
        shutil.rmtree(previous)
    else:
        os.replace(staging, export_dir)  # Onto nothing, or an empty folder.
    _sync_dir(parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sync_tree(root: str) -> None:
    """Flushes every file and folder under `root` to disk."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                os.fsync(f.fileno())
        _sync_dir(folder)


def _sync_dir(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def restore_classifier(config: NetworkConfig, checkpoint_dir: str,
                       train_images: np.ndarray,
                       train_labels: np.ndarray) -> Tuple[Classifier, str]:
    """Rebuilds a network that `training.train_network` trained, from disk.

    Args:
      config: the network's config, as trained.
      checkpoint_dir: the folder of its checkpoints
        (`<output_dir>/<network>/checkpoints`).
      train_images: [N, n] float32 array, the training images it was built
        from; they fix the input width.
      train_labels: [N] integer array.

    Returns:
      (model, checkpoint path) with every model variable restored.

    Raises:
      FileNotFoundError: if `checkpoint_dir` holds no checkpoint.
      AssertionError: if the checkpoint does not hold every model variable.
    """
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest is None:
        raise FileNotFoundError(
            f"expected a checkpoint in {checkpoint_dir}, found none."
        )
    # The checkpoint holds every value; it also fixes the number of classes,
    # which the training labels alone may not show.
    num_classes = tf.train.load_variable(latest, READOUT_BIAS_KEY).shape[0]
    model = training.build_network(config, train_images, train_labels,
                                   num_classes=num_classes, from_data=False)
    status = tf.train.Checkpoint(model=model).restore(latest)
    status.expect_partial().assert_existing_objects_matched()
    return model, latest


def check_networks_export(export_dir: str, output_dir: str, overwrite: bool = False,
                          remedy: str = "pass overwrite=True to replace the "
                          "exports there") -> None:
    """Checks before training that `export_networks` will be able to write.

    Args:
      export_dir, overwrite: as in `export_networks`.
      output_dir: the experiment's output directory.
      remedy: how the caller allows replacing, named in the error.

    Raises:
      ExportDirError: if `export_dir` is or holds `output_dir` (the exports
        could land on the networks' checkpoints), a file, or a non-empty folder
        while `overwrite` is False.
    """
    exports, outputs = os.path.realpath(export_dir), os.path.realpath(output_dir)
    if os.path.commonpath([exports, outputs]) == exports:
        raise ExportDirError(
            f"export directory {export_dir} must not hold the output directory "
            f"{output_dir}, where the checkpoints live; choose an export directory "
            f"outside it."
        )
    check_export_dir(export_dir, overwrite, remedy)


def export_networks(
    networks: Sequence[Tuple[str, NetworkConfig]],
    output_dir: str,
    data,
    export_dir: str,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> Dict[str, str]:
    """Exports each trained network to `export_dir/<name>`.

    Each network is restored from the latest checkpoint under
    `output_dir/<name>/checkpoints`, so this runs after training in any
    process that can read those files, whatever strategy trained them. Under
    a multi-worker strategy, call it from the chief only.

    Args:
      networks: (name, config) pairs, as passed to
        `experiment.run_experiment`.
      output_dir: the experiment's output directory.
      data: the training data, with train_images and train_labels.
      export_dir: the parent folder of the exports.
      overwrite: replace existing exports.
      log: receives one line per export.

    Returns:
      {name: export path}.
    """
    paths = {}
    for name, config in networks:
        model, checkpoint = restore_classifier(
            config, os.path.join(output_dir, name, "checkpoints"),
            data.train_images, data.train_labels)
        paths[name] = export_classifier(model, os.path.join(export_dir, name),
                                        overwrite=overwrite)
        log(f"{name}: exported {checkpoint} to {paths[name]}")
    return paths
