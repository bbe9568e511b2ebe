"""rbf_tf: Gaussian radial-basis-function networks in plain TensorFlow.

Public names:
  GaussianRBF: the Gaussian basis layer, y_i = w_i exp(-||x - mu_i||^2 / sigma_i^2).
  Dense: a hand-written dense layer, the baseline.
  Classifier: a hidden layer plus a linear readout giving logits.
  SGD, Adam: optimisers as `tf.Module`s.
  initializers: centers and widths from training data.
"""

from rbf_tf import initializers
from rbf_tf.classifier import Classifier, count_parameters
from rbf_tf.dense import Dense
from rbf_tf.gaussian import (
    GaussianRBF,
    squared_distances,
    squared_distances_reference,
)
from rbf_tf.optimizers import SGD, Adam, make_optimizer

__all__ = [
    "Adam",
    "Classifier",
    "Dense",
    "GaussianRBF",
    "SGD",
    "count_parameters",
    "initializers",
    "make_optimizer",
    "squared_distances",
    "squared_distances_reference",
]
__version__ = "0.1.0"
