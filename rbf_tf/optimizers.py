"""Gradient-descent optimisers as plain `tf.Module`s.

An optimiser owns its state as variables (a step counter, the learning rate,
one or two slots per trained variable), so `tf.train.Checkpoint(optimizer=opt)`
saves and restores it. Slots are created by `build`, outside any graph, on the
first `apply` (also when that call is being traced by `tf.function`); later
calls only assign, which is what `tf.function` needs.
"""

from typing import Optional, Sequence

import tensorflow as tf


class Optimizer(tf.Module):
    """Shared state of the optimisers: learning rate, step count and slots.

    A subclass sets `num_slots` and defines `_update(g, v, slots, step_size)`,
    which assigns the new value of variable `v` given its gradient `g`. It may
    override `_step_size`, the float64 factor of this step's update.

    The learning rate is held in float64 and cast to each variable's dtype when
    it is used, so float64 variables follow the requested rate exactly and
    float32 ones its nearest float32 value.

    Attributes:
      learning_rate: scalar float64 `tf.Variable`; assign to it to schedule.
      step: scalar int64 `tf.Variable`, the number of `apply` calls so far.
      slots: one list of `num_slots` non-trainable variables per trained
        variable, each of that variable's shape and dtype; empty before `build`.
    """

    num_slots = 0

    def __init__(self, learning_rate: float, name: Optional[str] = None):
        super().__init__(name=name)
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}.")
        with self.name_scope:
            self.learning_rate = tf.Variable(
                float(learning_rate),
                dtype=tf.float64,
                trainable=False,
                name="learning_rate",
            )
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.slots = []
        self._built_for = None

    def build(self, variables: Sequence[tf.Variable]) -> None:
        """Creates the slots for `variables`; a no-op when already built for them.

        Args:
          variables: the trained variables, in the order `apply` will get them.

        Raises:
          ValueError: if the optimiser was built for another list of variables.
        """
        refs = [v.ref() for v in variables]
        if self._built_for is not None:
            if refs != self._built_for:
                raise ValueError(
                    f"{self.name} was built for {len(self._built_for)} variables and "
                    f"cannot be applied to a different list of {len(refs)}."
                )
            return
        with tf.init_scope(), self.name_scope:
            for v in variables:
                base = v.name.split(":")[0].replace("/", "_")
                self.slots.append(
                    [
                        tf.Variable(
                            tf.zeros_like(v), trainable=False, name=f"{base}_slot{i}"
                        )
                        for i in range(self.num_slots)
                    ]
                )
        self._built_for = refs

    def apply(self, gradients, variables: Sequence[tf.Variable]) -> None:
        """Updates `variables` in place from `gradients` and counts one step.

        Args:
          gradients: one tensor (or None) per variable, of its shape and dtype.
            A None gradient leaves its variable and slots unchanged.
          variables: the trained variables, the same list on every call.

        Raises:
          ValueError: if the lengths differ, or `variables` is not the list the
            optimiser was built for.
        """
        variables = list(variables)
        gradients = list(gradients)
        if len(gradients) != len(variables):
            raise ValueError(
                f"got {len(gradients)} gradients for {len(variables)} variables."
            )
        self.build(variables)
        self.step.assign_add(1)
        step_size = self._step_size()  # float64 scalar
        for g, v, slots in zip(gradients, variables, self.slots, strict=True):
            if g is not None:
                g = tf.convert_to_tensor(g)
                self._update(g, v, slots, tf.cast(step_size, v.dtype))

    def _step_size(self) -> tf.Tensor:
        """The float64 factor of this step's update: the learning rate."""
        return self.learning_rate.read_value()


class SGD(Optimizer):
    """Stochastic gradient descent with (optionally Nesterov) momentum.

    v <- momentum * v + g;  x <- x - lr * v.
    With Nesterov momentum the last line is x <- x - lr * (g + momentum * v).
    """

    num_slots = 1

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.9,
        nesterov: bool = False,
        name: Optional[str] = None,
    ):
        """Creates the optimiser; its slots come with the first `apply`.

        Args:
          learning_rate: lr, positive.
          momentum: in [0, 1); 0 gives plain gradient descent.
          nesterov: whether to use Nesterov momentum.
          name: module name; default "sgd".

        Raises:
          ValueError: if a hyperparameter is out of range.
        """
        super().__init__(learning_rate, name=name)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}.")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _update(self, g, v, slots, step_size):
        (velocity,) = slots
        velocity.assign(self.momentum * velocity + g)
        if self.nesterov:
            v.assign_sub(step_size * (g + self.momentum * velocity))
        else:
            v.assign_sub(step_size * velocity)


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias correction.

    m <- b1 m + (1 - b1) g;  s <- b2 s + (1 - b2) g^2;
    x <- x - lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(s) + epsilon),
    with t the step count from 1. The bias correction is computed in float64:
    in float32, 1 - b2^t for b2 = 0.999 would keep only about four digits.
    """

    num_slots = 2

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        name: Optional[str] = None,
    ):
        """Creates the optimiser; its slots come with the first `apply`.

        Args:
          learning_rate: lr, positive.
          beta1: decay of the mean of the gradients m, in [0, 1).
          beta2: decay of the mean of their squares s, in [0, 1).
          epsilon: non-negative, added to sqrt(s) against division by zero.
          name: module name; default "adam".

        Raises:
          ValueError: if a hyperparameter is out of range.
        """
        super().__init__(learning_rate, name=name)
        for label, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{label} must be in [0, 1), got {beta}.")
        if not epsilon >= 0.0:
            raise ValueError(f"epsilon must be non-negative, got {epsilon}.")
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.epsilon = float(epsilon)

    def _step_size(self) -> tf.Tensor:
        """lr * sqrt(1 - b2^t) / (1 - b1^t), a float64 scalar."""
        t = tf.cast(self.step, tf.float64)
        correction = tf.sqrt(1.0 - self.beta2**t) / (1.0 - self.beta1**t)
        return self.learning_rate * correction

    def _update(self, g, v, slots, step_size):
        m, s = slots
        m.assign(self.beta1 * m + (1.0 - self.beta1) * g)
        s.assign(self.beta2 * s + (1.0 - self.beta2) * tf.square(g))
        v.assign_sub(step_size * m / (tf.sqrt(s) + self.epsilon))


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def make_optimizer(name: str, learning_rate: float) -> Optimizer:
    """Returns `SGD` (momentum 0.9) or `Adam` (default betas) by name.

    Args:
      name: "sgd" or "adam".
      learning_rate: positive learning rate.

    Raises:
      ValueError: if `name` is unknown or `learning_rate` is not positive.
    """
    if name not in OPTIMIZERS:
        raise ValueError(
            f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}."
        )
    return OPTIMIZERS[name](learning_rate)
