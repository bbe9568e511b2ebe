"""The Gaussian radial-basis-function layer."""

from typing import Optional

import numpy as np
import tensorflow as tf

from rbf_tf.base import Layer

DISTANCES = ("fast", "reference")

# Smallest width^2 that enters the exponent. A zero width would divide by zero;
# a width below sqrt(MIN_VARIANCE) acts as this one, a unit that answers only to
# inputs that sit on its center. Its reciprocal squared (1e24) stays finite in
# float32, so gradients through the clamp stay finite too.
MIN_VARIANCE = 1e-12


def squared_distances(x: tf.Tensor, mu: tf.Tensor) -> tf.Tensor:
    """Squared Euclidean distances by one matrix product (the fast path).

    Expands ||x - mu_i||^2 = ||x||^2 - 2 x.mu_i + ||mu_i||^2 and clamps the
    result at zero, where rounding can push it slightly below.

    Args:
      x: [batch_size, n] tensor.
      mu: [n, m] tensor of centers, one per column, same dtype as `x`.

    Returns:
      [batch_size, m] tensor of squared distances, dtype of `x`.
    """
    x_sq = tf.reduce_sum(tf.square(x), axis=1, keepdims=True)  # [B, 1]
    mu_sq = tf.reduce_sum(tf.square(mu), axis=0)  # [m]
    d2 = x_sq - 2.0 * tf.matmul(x, mu) + mu_sq  # [B, m]
    return tf.maximum(d2, 0.0)


def squared_distances_reference(x: tf.Tensor, mu: tf.Tensor) -> tf.Tensor:
    """Squared Euclidean distances by broadcasting, the plain reference.

    Builds the [batch_size, n, m] tensor of differences, so memory grows with
    batch_size * n * m. Use it to check `squared_distances`, not to train.

    Args:
      x: [batch_size, n] tensor.
      mu: [n, m] tensor of centers, same dtype as `x`.

    Returns:
      [batch_size, m] tensor of squared distances, dtype of `x`.
    """
    diff = x[:, :, tf.newaxis] - mu[tf.newaxis, :, :]  # [B, n, m]
    return tf.reduce_sum(tf.square(diff), axis=1)


class GaussianRBF(Layer):
    """A layer of Gaussian radial basis functions.

    Unit i answers to inputs near its center mu_i:

        y_i = w_i * exp(-||x - mu_i||^2 / sigma_i^2)

    sigma_i sets the width of the region it answers to and w_i its weight. Only
    sigma_i^2 enters, so the sign of a width does not matter; a width of zero is
    kept from dividing by zero by using max(sigma_i^2, MIN_VARIANCE) = 1e-12 as
    the variance, which leaves any width above 1e-6 exact.

    Variables (all trainable, all of the layer's dtype):
      mu: [input_dim, units], the centers, one per column.
      sigma: [units], the widths.
      w: [units], the weights.

    Example:

        rbf = rbf_tf.GaussianRBF(input_dim=784, units=100)
        y = rbf(tf.zeros([32, 784]))  # [32, 100]
    """

    def __init__(
        self,
        input_dim: int,
        units: int,
        *,
        mu=None,
        sigma=None,
        w=None,
        distance: str = "fast",
        check_numerics: bool = False,
        seed: int = 0,
        dtype=tf.float32,
        name: Optional[str] = None,
    ):
        """Creates the layer and its variables.

        Args:
          input_dim: n, the width of the input.
          units: m, the number of Gaussian units.
          mu: initial centers, array-like of shape [input_dim, units]. Default:
            standard normal values drawn with `seed`. See
            `rbf_tf.initializers` for centers taken from data.
          sigma: initial widths, a scalar or array-like of shape [units].
            Default: sqrt(input_dim), about the distance between two standard
            normal points divided by sqrt(2).
          w: initial weights, a scalar or array-like of shape [units].
            Default: 1.
          distance: "fast" (one matrix product; the default) or "reference"
            (broadcast differences, memory batch_size * n * m).
          check_numerics: if True, a NaN or Inf in the input raises
            `tf.errors.InvalidArgumentError`.
          seed: seeds the default centers.
          dtype: tf.float32 or tf.float64.
          name: module name; default "gaussian_rbf".

        Raises:
          ValueError: if a shape is wrong, an initial value is not finite,
            `distance` is unknown, or `input_dim` or `units` is below 1.
          TypeError: if `dtype` is not float32 or float64, or an initial value
            is not numeric.
        """
        super().__init__(input_dim, units, dtype, check_numerics, name)
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}.")
        self.distance = distance

        if mu is None:
            rng = np.random.default_rng(seed)
            mu = rng.standard_normal((self.input_dim, self.units))
        if sigma is None:
            sigma = np.sqrt(self.input_dim)
        if w is None:
            w = 1.0
        with self.name_scope:
            self.mu = tf.Variable(
                self._initial_value("mu", mu, [self.input_dim, self.units]), name="mu"
            )
            self.sigma = tf.Variable(
                self._initial_value("sigma", sigma, [self.units]), name="sigma"
            )
            self.w = tf.Variable(self._initial_value("w", w, [self.units]), name="w")

    def _initial_value(self, name, value, shape) -> np.ndarray:
        """Returns `value` as a finite array of `shape` in the layer's dtype."""
        try:
            value = np.asarray(value, dtype=self.dtype.as_numpy_dtype)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must be numeric with shape {shape}, got a non-numeric "
                f"{type(value).__name__}."
            ) from None
        if value.ndim == 0 and len(shape) == 1:
            value = np.full(shape, value, dtype=value.dtype)
        if list(value.shape) != shape:
            raise ValueError(
                f"{name} must have shape {shape}, got {list(value.shape)}."
            )
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} must be finite, got a NaN or Inf.")
        return value

    def variance(self) -> tf.Tensor:
        """Returns max(sigma^2, MIN_VARIANCE), [units], the layer's dtype."""
        return tf.maximum(tf.square(self.sigma), MIN_VARIANCE)

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        if self.distance == "fast":
            d2 = squared_distances(x, self.mu)
        else:
            d2 = squared_distances_reference(x, self.mu)
        return self.w * tf.exp(-d2 / self.variance())  # [B, m]
