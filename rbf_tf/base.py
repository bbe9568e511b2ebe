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
      TypeError: for any other dtype.
    """
    dtype = tf.as_dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"dtype must be tf.float32 or tf.float64, got {dtype.name}."
        )
    return dtype


def check_positive_int(name: str, value) -> int:
    """Returns `value` if it is a positive int, else raises ValueError."""
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
    serves every batch size and `tf.saved_model.save(layer, path)` exports it.

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
        self.forward = tf.function(self._checked_forward, input_signature=[self.input_spec])

    def __call__(self, x) -> tf.Tensor:
        """Applies the layer.

        Args:
          x: [batch_size, input_dim] tensor, NumPy array or nested list, of the
            layer's dtype. Python lists are converted; tensors and arrays of any
            other dtype are refused rather than cast.

        Returns:
          [batch_size, units] tensor of the layer's dtype.

        Raises:
          TypeError: if `x` is not numeric or its dtype is not the layer's.
          ValueError: if `x` is not of rank 2 or its last dimension is not
            `input_dim`.
        """
        return self.forward(self.check_input(x))

    def check_input(self, x) -> tf.Tensor:
        """Returns `x` as a tensor after checking dtype, rank and width."""
        received = getattr(x, "dtype", None)
        if received is not None:
            try:
                received = tf.as_dtype(received)
            except TypeError:
                raise TypeError(
                    f"{self.name} expects a numeric input of dtype {self.dtype.name}, "
                    f"got dtype {x.dtype}."
                ) from None
            if not (received.is_floating or received.is_integer):
                raise TypeError(
                    f"{self.name} expects a numeric input of dtype {self.dtype.name}, "
                    f"got dtype {received.name}."
                )
            if received != self.dtype:
                raise TypeError(
                    f"{self.name} expects input of dtype {self.dtype.name}, got "
                    f"{received.name}; cast it first (for example with tf.cast) or "
                    f"build the layer with dtype={received.name}."
                )
        else:
            try:
                x = tf.convert_to_tensor(x, dtype=self.dtype)
            except (TypeError, ValueError) as e:
                raise TypeError(
                    f"{self.name} expects a numeric input convertible to "
                    f"{self.dtype.name}, got {type(x).__name__} ({e})."
                ) from None
        x = tf.convert_to_tensor(x)
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

    def _checked_forward(self, x: tf.Tensor) -> tf.Tensor:
        if self.check_numerics:
            x = tf.debugging.check_numerics(
                x, f"{self.name} received a NaN or Inf in its input"
            )
        return self._forward(x)
