"""rbf_tf: Gaussian radial-basis-function networks in plain TensorFlow.

Public names:
  GaussianRBF: the Gaussian basis layer, y_i = w_i exp(-||x - mu_i||^2 / sigma_i^2).
  Dense: a hand-written dense layer, the baseline.
  Classifier: a hidden layer plus a linear readout giving logits.
  SGD, Adam: optimisers as `tf.Module`s.
  initializers: centers and widths from training data.
  datasets: verified MNIST / Fashion-MNIST loading and tf.data pipelines.
  training: the training step and loop shared by both networks.
"""

from rbf_tf import datasets, initializers, training
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
    "datasets",
    "initializers",
    "make_optimizer",
    "squared_distances",
    "squared_distances_reference",
    "training",
]
__version__ = "0.1.0"
