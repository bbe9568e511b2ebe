"""Gradient-descent optimisers as plain `tf.Module`s.

An optimiser owns its state as variables (a step counter, the learning rate,
one or two slots per trained variable), so `tf.train.Checkpoint(optimizer=opt)`
saves and restores it. Slots are created by `build`, eagerly, before the first
compiled step; `apply` then only assigns, which is what `tf.function` needs.
"""

from typing import Optional, Sequence

import tensorflow as tf


class Optimizer(tf.Module):
    """Shared state of the optimisers: learning rate, step count and slots.

    A subclass sets `num_slots` and defines `_update(g, v, slots, lr)`, which
    assigns the new value of variable `v` given its gradient `g`.

    Attributes:
      learning_rate: scalar float32 `tf.Variable`; assign to it to schedule.
      step: scalar int64 `tf.Variable`, the number of `apply` calls so far.
    """

    num_slots = 0

    def __init__(self, learning_rate: float, name: Optional[str] = None):
        super().__init__(name=name)
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}.")
        with self.name_scope:
            self.learning_rate = tf.Variable(
                float(learning_rate), dtype=tf.float32, trainable=False,
                name="learning_rate",
            )
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.slots = []  # one list of `num_slots` variables per trained variable.
        self._built_for = None

    def build(self, variables: Sequence[tf.Variable]) -> None:
        """Creates the slots for `variables`; a no-op when already built for them."""
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
                        tf.Variable(tf.zeros_like(v), trainable=False,
                                    name=f"{base}_slot{i}")
                        for i in range(self.num_slots)
                    ]
                )
        self._built_for = refs

    def apply(self, gradients, variables: Sequence[tf.Variable]) -> None:
        """Updates `variables` in place from `gradients` (same order and shapes).

        A None gradient leaves its variable and slots unchanged.
        """
        variables = list(variables)
        gradients = list(gradients)
        if len(gradients) != len(variables):
            raise ValueError(
                f"got {len(gradients)} gradients for {len(variables)} variables."
            )
        self.build(variables)
        self.step.assign_add(1)
        for g, v, slots in zip(gradients, variables, self.slots):
            if g is not None:
                lr = tf.cast(self.learning_rate, v.dtype)
                self._update(tf.convert_to_tensor(g), v, slots, lr)


class SGD(Optimizer):
    """Stochastic gradient descent with (optionally Nesterov) momentum.

    v <- momentum * v + g;  x <- x - lr * v  (Nesterov: x <- x - lr * (g + momentum * v)).
    """

    num_slots = 1

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.9,
        nesterov: bool = False,
        name: Optional[str] = None,
    ):
        super().__init__(learning_rate, name=name)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}.")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _update(self, g, v, slots, lr):
        (velocity,) = slots
        velocity.assign(self.momentum * velocity + g)
        if self.nesterov:
            v.assign_sub(lr * (g + self.momentum * velocity))
        else:
            v.assign_sub(lr * velocity)


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias correction.

    m <- b1 m + (1 - b1) g;  s <- b2 s + (1 - b2) g^2;
    x <- x - lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(s) + epsilon).
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
        super().__init__(learning_rate, name=name)
        for label, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{label} must be in [0, 1), got {beta}.")
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.epsilon = float(epsilon)

    def _update(self, g, v, slots, lr):
        m, s = slots
        t = tf.cast(self.step, v.dtype)
        m.assign(self.beta1 * m + (1.0 - self.beta1) * g)
        s.assign(self.beta2 * s + (1.0 - self.beta2) * tf.square(g))
        scale = lr * tf.sqrt(1.0 - self.beta2**t) / (1.0 - self.beta1**t)
        v.assign_sub(scale * m / (tf.sqrt(s) + self.epsilon))


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def make_optimizer(name: str, learning_rate: float) -> Optimizer:
    """Returns `SGD` (momentum 0.9) or `Adam` by name ("sgd" or "adam")."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}.")
    return OPTIMIZERS[name](learning_rate)
