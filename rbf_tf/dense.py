"""A hand-written fully connected layer, the baseline for `GaussianRBF`."""

from typing import Callable, Optional, Union

import numpy as np
import tensorflow as tf

from rbf_tf.base import Layer

ACTIVATIONS = {
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "sigmoid": tf.sigmoid,
    "linear": None,
}


class Dense(Layer):
    """A dense layer: y = activation(x @ kernel + bias).

    Variables (trainable, of the layer's dtype):
      kernel: [input_dim, units], Glorot-uniform (He-normal for ReLU), seeded.
      bias: [units], zeros.

    Example:

        hidden = rbf_tf.Dense(input_dim=784, units=100, activation="relu")
        h = hidden(tf.zeros([32, 784]))  # [32, 100]
    """

    def __init__(
        self,
        input_dim: int,
        units: int,
        activation: Union[str, Callable, None] = "relu",
        *,
        check_numerics: bool = False,
        seed: int = 0,
        dtype=tf.float32,
        name: Optional[str] = None,
    ):
        """Creates the layer and its variables.

        Args:
          input_dim: n, the width of the input.
          units: m, the width of the output.
          activation: "relu", "tanh", "sigmoid", "linear", None (same as
            "linear") or a callable applied elementwise.
          check_numerics: if True, a NaN or Inf in the input raises
            `tf.errors.InvalidArgumentError`.
          seed: seeds the kernel.
          dtype: tf.float32 or tf.float64.
          name: module name; default "dense".

        Raises:
          ValueError: if `activation` is an unknown name, or `input_dim` or
            `units` is below 1.
          TypeError: if `activation` is neither a name, None nor a callable, or
            `dtype` is not float32 or float64.
        """
        super().__init__(input_dim, units, dtype, check_numerics, name)
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(
                    f"activation must be one of {sorted(ACTIVATIONS)} or a "
                    f"callable, got {activation!r}."
                )
            self.activation_name = activation
            activation = ACTIVATIONS[activation]
        elif activation is None or callable(activation):
            self.activation_name = getattr(activation, "__name__", "linear")
        else:
            raise TypeError(
                f"activation must be one of {sorted(ACTIVATIONS)}, None or a "
                f"callable, got {activation!r}."
            )
        self.activation = activation

        rng = np.random.default_rng(seed)
        shape = (self.input_dim, self.units)
        if self.activation is tf.nn.relu:
            kernel = rng.normal(0.0, np.sqrt(2.0 / self.input_dim), shape)
        else:
            limit = np.sqrt(6.0 / (self.input_dim + self.units))
            kernel = rng.uniform(-limit, limit, shape)
        numpy_dtype = self.dtype.as_numpy_dtype
        with self.name_scope:
            self.kernel = tf.Variable(kernel.astype(numpy_dtype), name="kernel")
            self.bias = tf.Variable(np.zeros(self.units, numpy_dtype), name="bias")

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        y = tf.matmul(x, self.kernel) + self.bias  # [B, m]
        if self.activation is not None:
            y = self.activation(y)
        return y
