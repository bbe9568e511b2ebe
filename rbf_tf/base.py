"""The calling convention shared by every layer in rbf_tf.

A layer maps a batch `x` of shape [batch_size, input_dim] to [batch_size, units].
Its input is checked once, in Python, before any graph is built, so that a wrong
rank, width or dtype is reported in the caller's terms rather than as a TensorFlow
shape error deep inside a graph.
"""

from typing import Optional

import numpy as np
import tensorflow as tf

FLOAT_DTYPES = (tf.float32, tf.float64)


def as_float_dtype(dtype) -> tf.DType:
    """Returns `dtype` as a `tf.DType`, which must be float32 or float64.

    Raises:
      TypeError: for any other dtype, or a value that is not a dtype at all.
    """
    try:
        converted = tf.as_dtype(dtype)
    except TypeError:
        raise TypeError(
            f"dtype must be tf.float32 or tf.float64, got {dtype!r}."
        ) from None
    if converted not in FLOAT_DTYPES:
        raise TypeError(
            f"dtype must be tf.float32 or tf.float64, got {converted.name}."
        )
    return converted


def check_positive_int(name: str, value) -> int:
    """Returns `value` as an int after checking that it is a positive integer.

    Raises:
      TypeError: if `value` is not an int (bools are refused).
      ValueError: if `value` is below 1.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}.")
    return int(value)


class Layer(tf.Module):
    """Base of `GaussianRBF` and `Dense`: input checks and a compiled forward.

    Subclasses implement `_forward(x)` on a checked [batch_size, input_dim]
    tensor. `__call__` checks its input and then runs `forward`, a `tf.function`
    whose input signature is [None, input_dim] in the layer's dtype, so one trace
    serves every batch size.

    `tf.saved_model.save(layer, path)` exports `forward` three ways: as the
    attribute `forward`, as the `serving_default` signature, and as `__call__`,
    so the object returned by `tf.saved_model.load(path)` is itself callable on a
    [batch_size, input_dim] tensor, in a process that never imports rbf_tf. The
    reloaded callables run the graph only, without the Python checks of
    `__call__`. Checkpoints (`tf.train.Checkpoint`) are unaffected.

    Attributes:
      input_dim: int, width n of the input.
      units: int, width m of the output.
      dtype: tf.float32 or tf.float64, dtype of variables, inputs and outputs.
      check_numerics: bool; when True a NaN or Inf in the input raises
        `tf.errors.InvalidArgumentError` instead of propagating.
      forward: the compiled forward, a `tf.function` of one [None, input_dim]
        tensor. It skips the Python checks of `__call__`.
    """

    def __init__(
        self,
        input_dim: int,
        units: int,
        dtype=tf.float32,
        check_numerics: bool = False,
        name: Optional[str] = None,
    ):
        super().__init__(name=name)
        self.input_dim = check_positive_int("input_dim", input_dim)
        self.units = check_positive_int("units", units)
        self.dtype = as_float_dtype(dtype)
        self.check_numerics = bool(check_numerics)
        self.input_spec = tf.TensorSpec([None, self.input_dim], self.dtype, name="x")
        self.forward = tf.function(
            self._checked_forward, input_signature=[self.input_spec]
        )

    def __call__(self, x) -> tf.Tensor:
        """Applies the layer.

        Args:
          x: [batch_size, input_dim] tensor, NumPy array or nested list, of the
            layer's dtype. Nested lists of Python ints or floats are converted;
            tensors and arrays of any other dtype are refused rather than cast.

        Returns:
          [batch_size, units] tensor of the layer's dtype.

        Raises:
          TypeError: if `x` is not numeric or its dtype is not the layer's.
          ValueError: if `x` is not of rank 2 or its last dimension is not
            `input_dim`.
        """
        return self.forward(self.check_input(x))

    def check_input(self, x) -> tf.Tensor:
        """Returns `x` as a tensor after checking dtype, rank and width.

        Args:
          x: as in `__call__`.

        Returns:
          [batch_size, input_dim] tensor of the layer's dtype.

        Raises:
          TypeError, ValueError: as `__call__`.
        """
        if getattr(x, "dtype", None) is not None:
            self._check_dtype(x.dtype)
            x = tf.convert_to_tensor(x)
        else:
            x = self._convert_nested_list(x)

        if x.shape.rank != 2:
            raise ValueError(
                f"{self.name} expects input of shape [batch_size, {self.input_dim}], "
                f"got shape {x.shape} (rank {x.shape.rank})."
            )
        if x.shape[-1] is not None and x.shape[-1] != self.input_dim:
            raise ValueError(
                f"{self.name} expects input of shape [batch_size, {self.input_dim}], "
                f"got shape {x.shape}."
            )
        return x

    def _check_dtype(self, dtype) -> None:
        """Raises TypeError unless `dtype` is the layer's dtype."""
        try:
            received = tf.as_dtype(dtype)
        except TypeError:
            received = None
        if received is None or not (received.is_floating or received.is_integer):
            raise TypeError(
                f"{self.name} expects a numeric input of dtype {self.dtype.name}, "
                f"got dtype {getattr(received, 'name', dtype)}."
            )
        if received != self.dtype:
            remedy = "cast it first (for example with tf.cast)"
            if received in FLOAT_DTYPES:
                remedy += f" or build the layer with dtype={received.name}"
            raise TypeError(
                f"{self.name} expects input of dtype {self.dtype.name}, got "
                f"{received.name}; {remedy}."
            )

    def _convert_nested_list(self, x) -> tf.Tensor:
        """Converts Python numbers (not bools or strings) to the layer's dtype."""
        try:
            array = np.asarray(x)
        except ValueError:
            raise ValueError(
                f"{self.name} expects input of shape [batch_size, {self.input_dim}], "
                f"got a ragged {type(x).__name__}."
            ) from None
        if array.dtype.kind not in "iuf":
            raise TypeError(
                f"{self.name} expects a numeric input convertible to "
                f"{self.dtype.name}, got a {type(x).__name__} of "
                f"{array.dtype.name} values."
            )
        return tf.convert_to_tensor(array.astype(self.dtype.as_numpy_dtype))

    def _checked_forward(self, x: tf.Tensor) -> tf.Tensor:
        if self.check_numerics:
            x = tf.debugging.check_numerics(
                x, f"{self.name} received a NaN or Inf in its input"
            )
        return self._forward(x)

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        # tf.saved_model.load makes a restored object callable when it has a child
        # named `__call__`. With `forward` reachable under two names the saver no
        # longer picks it as the default signature on its own (it wants a single
        # candidate), so it is also given the name the saver looks for first.
        children = super()._trackable_children(save_type, **kwargs)
        if save_type == "savedmodel":
            children["__call__"] = self.forward
            children["_default_save_signature"] = self.forward
        return children
