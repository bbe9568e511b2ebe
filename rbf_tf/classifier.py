"""A hidden layer followed by a linear readout that produces class logits."""

from typing import Dict, Optional

import tensorflow as tf

from rbf_tf.base import Layer, check_positive_int
from rbf_tf.dense import Dense


def count_parameters(module: tf.Module) -> int:
    """Returns the number of scalars in the trainable variables of `module`.

    Args:
      module: any `tf.Module`; variables shared by two of its submodules count
        once.

    Returns:
      A Python int.
    """
    return int(sum(v.shape.num_elements() for v in module.trainable_variables))


class Classifier(Layer):
    """logits = readout(hidden(x)), with readout a linear `Dense` layer.

    For input width n, m hidden units and k classes the parameter counts are
    n*m + 2m for a `GaussianRBF` hidden layer (mu, sigma, w), n*m + m for a
    `Dense` one (kernel, bias) and m*k + k for the readout.

    Attributes:
      hidden: the hidden layer, any `rbf_tf.base.Layer`.
      readout: `Dense(hidden.units, num_classes, activation=None)`.
    """

    def __init__(
        self,
        hidden: Layer,
        num_classes: int = 10,
        *,
        seed: int = 0,
        name: Optional[str] = None,
    ):
        """Builds the readout on top of `hidden`.

        Args:
          hidden: the hidden layer; its dtype and input width become the
            classifier's.
          num_classes: k, the number of logits.
          seed: seeds the readout kernel.
          name: module name; default "classifier".

        Raises:
          TypeError: if `hidden` is not an rbf_tf layer or `num_classes` is not
            an int.
          ValueError: if `num_classes` is below 1.
        """
        if not isinstance(hidden, Layer):
            raise TypeError(
                f"hidden must be an rbf_tf layer (GaussianRBF or Dense), got "
                f"{type(hidden).__name__}."
            )
        num_classes = check_positive_int("num_classes", num_classes)
        # NaN checks, when asked for, are the hidden layer's job.
        super().__init__(hidden.input_dim, num_classes, hidden.dtype, False, name)
        self.hidden = hidden
        with self.name_scope:
            self.readout = Dense(
                hidden.units,
                num_classes,
                activation=None,
                seed=seed + 1,
                dtype=hidden.dtype,
                name="readout",
            )

    @property
    def num_classes(self) -> int:
        """k, the number of logits (the classifier's `units`)."""
        return self.units

    def param_counts(self) -> Dict[str, int]:
        """Returns {"hidden": ..., "readout": ..., "total": ...} scalar counts."""
        hidden = count_parameters(self.hidden)
        readout = count_parameters(self.readout)
        return {"hidden": hidden, "readout": readout, "total": hidden + readout}

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        # The hidden layer's own checks already ran on `x`; call its graph.
        return self.readout.forward(self.hidden.forward(x))  # [B, k]
