"""The Gaussian radial-basis-function layer and its two ways of computing.

The fast path costs about what a dense layer of the same shape costs: one
[batch_size, n] x [n, m] matrix product forward, two backward, and elementwise
work on [batch_size, m] and [n, m] tensors. The reference path broadcasts the
differences x - mu_i into a [batch_size, n, m] tensor; it is exact near the
centers and serves to check the fast one.
"""

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


def floored_variance(sigma: tf.Tensor) -> tf.Tensor:
    """Returns max(sigma^2, MIN_VARIANCE), elementwise, in the dtype of `sigma`."""
    return tf.maximum(tf.square(sigma), MIN_VARIANCE)


def gaussian_rbf_reference(
    x: tf.Tensor, mu: tf.Tensor, sigma: tf.Tensor, w: tf.Tensor
) -> tf.Tensor:
    """w_i exp(-||x - mu_i||^2 / max(sigma_i^2, MIN_VARIANCE)), by broadcasting.

    Plain TensorFlow on `squared_distances_reference`; its gradients come from
    automatic differentiation. Memory grows with batch_size * n * m.

    Args:
      x: [batch_size, n] tensor.
      mu: [n, m] centers, one per column, same dtype as `x`.
      sigma: [m] widths; only sigma^2 enters.
      w: [m] weights.

    Returns:
      [batch_size, m] tensor, dtype of `x`.
    """
    d2 = squared_distances_reference(x, mu)  # [B, m]
    return w * tf.exp(-d2 / floored_variance(sigma))


@tf.custom_gradient
def gaussian_rbf(x: tf.Tensor, mu: tf.Tensor, sigma: tf.Tensor, w: tf.Tensor):
    """w_i exp(-||x - mu_i||^2 / max(sigma_i^2, MIN_VARIANCE)), the fast path.

    With h = x.mu_i - ||x||^2 / 2 - ||mu_i||^2 / 2 = -||x - mu_i||^2 / 2, the
    exponent is min(h, 0) * 2 / variance_i; the clamp removes the rounding that
    can make h slightly positive. Forward: one matrix product and a few
    elementwise operations. Backward, for an upstream gradient g and
    q = g * y * 2 / variance (the gradient with respect to h):

        dL/dw     = sum_b g * e,  e = exp(exponent), so that y = w * e
        dL/dmu    = x^T q - mu * sum_b q
        dL/dx     = q mu^T - x * sum_i q
        dL/dsigma = -sigma * 2 / variance * w * sum_b(g * e * exponent)

    two matrix products, as a dense layer's backward has; when x needs no
    gradient, as for a first layer, TensorFlow prunes q mu^T. dL/dsigma is zero
    where sigma^2 < MIN_VARIANCE, as the floor is flat there. The gradients
    with respect to x and mu are those of the exact distance, also where the
    clamp acted: it only removes rounding, and there the exact gradient is
    close to zero. The gradient is built from TensorFlow operations on saved
    forward values, so a second derivative can be taken through it.

    Accuracy: the expansion loses about eps * (||x||^2 + ||mu_i||^2) of absolute
    accuracy in the squared distance, eps the machine epsilon, so the relative
    error of y_i is about that divided by the variance. Where that is not small,
    near zero widths in float32 say, use `gaussian_rbf_reference`.

    Args:
      x: [batch_size, n] tensor.
      mu: [n, m] centers, one per column, same dtype as `x`.
      sigma: [m] widths; only sigma^2 enters.
      w: [m] weights.

    Returns:
      [batch_size, m] tensor, dtype of `x`.
    """
    scale = 2.0 / floored_variance(sigma)  # [m]
    half_x_sq = 0.5 * tf.reduce_sum(tf.square(x), axis=1, keepdims=True)  # [B, 1]
    half_mu_sq = 0.5 * tf.reduce_sum(tf.square(mu), axis=0)  # [m]
    h = tf.nn.bias_add(tf.matmul(x, mu), -half_mu_sq) - half_x_sq  # [B, m]
    exponent = tf.minimum(h, 0.0) * scale  # -d^2 / variance, [B, m]
    e = tf.exp(exponent)
    y = e * w

    def gradient(g):
        ge = g * e  # [B, m]
        dw = tf.reduce_sum(ge, axis=0)  # [m]
        weighted_scale = w * scale  # [m]
        q = ge * weighted_scale  # dL/dh, [B, m]
        dmu = tf.matmul(x, q, transpose_a=True) - mu * (weighted_scale * dw)  # [n, m]
        dx = tf.matmul(q, mu, transpose_b=True) - x * tf.reduce_sum(
            q, axis=1, keepdims=True
        )  # [B, n]
        dsigma = tf.where(
            tf.square(sigma) >= MIN_VARIANCE,
            -sigma * weighted_scale * tf.reduce_sum(ge * exponent, axis=0),
            tf.zeros_like(sigma),
        )  # [m]
        return dx, dmu, dsigma, dw

    return y, gradient


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
          distance: "fast" (`gaussian_rbf`: one matrix product forward, two
            backward; the default) or "reference" (`gaussian_rbf_reference`:
            broadcast differences, memory batch_size * n * m, exact near the
            centers at any width).
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
        return floored_variance(self.sigma)

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        # Read the variables once, so the gradient uses the values of this call.
        mu, sigma, w = (tf.convert_to_tensor(v) for v in (self.mu, self.sigma, self.w))
        if self.distance == "fast":
            return gaussian_rbf(x, mu, sigma, w)  # [B, m]
        return gaussian_rbf_reference(x, mu, sigma, w)  # [B, m]
