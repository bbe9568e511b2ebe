"""Initial values for a `GaussianRBF` layer, taken from training data.

The recipe: centers are training samples drawn at random without replacement,
every width is the typical distance between two samples of the same class, and
every weight is 1. All functions take NumPy arrays and return NumPy arrays;
randomness comes only from the `seed` argument.
"""

from typing import Dict

import numpy as np
import scipy.spatial

# Memory of the in-class distance estimate, for a per-class sample of s points
# of width n (float64): the s x s distance matrix, 8 * s^2 bytes, plus one row of
# differences at a time inside scipy, 8 * s * n bytes. At the largest accepted s
# (MAX_WIDTH_SAMPLE) and n = 784 that is 32 MiB + 12 MiB. The full 60,000-sample
# MNIST matrix would need 60,000^2 * 8 bytes = 26.8 GiB.
MAX_WIDTH_SAMPLE = 2000


def _check_data(x: np.ndarray, labels=None) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(
            f"data must have shape [num_examples, input_dim], got shape {x.shape}."
        )
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"data must be numeric, got dtype {x.dtype}.")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(x):
            raise ValueError(
                f"labels must have shape [{len(x)}] to match data of shape "
                f"{x.shape}, got shape {labels.shape}."
            )
    return x


def centers_from_samples(x: np.ndarray, units: int, seed: int = 0) -> np.ndarray:
    """Picks `units` distinct training samples as centers.

    Args:
      x: [num_examples, input_dim] array of training inputs.
      units: number of centers m; at most num_examples.
      seed: seeds the choice.

    Returns:
      [input_dim, units] float64 array, one center per column (the layout of
      `GaussianRBF.mu`).

    Raises:
      ValueError: if `units` exceeds the number of examples.
    """
    x = _check_data(x)
    if units < 1 or units > len(x):
        raise ValueError(
            f"cannot choose {units} centers from {len(x)} examples without "
            f"replacement; use at most {len(x)} units or more data."
        )
    rng = np.random.default_rng(seed)
    index = rng.choice(len(x), size=units, replace=False)
    return x[index].astype(np.float64).T


def in_class_distances(
    x: np.ndarray, labels: np.ndarray, sample_size: int = 500, seed: int = 0
) -> Dict[int, float]:
    """Mean distance between two distinct samples of each class.

    Each class is estimated from a random subset of at most `sample_size` of its
    samples (all of them if it has fewer) with `scipy.spatial.distance_matrix`,
    so memory is bounded by `sample_size` whatever the size of the data (see
    MAX_WIDTH_SAMPLE).

    Args:
      x: [num_examples, input_dim] array of training inputs.
      labels: [num_examples] integer class labels.
      sample_size: samples per class, 2 to MAX_WIDTH_SAMPLE, and no more than
        num_examples.
      seed: seeds the subsets.

    Returns:
      {label: mean in-class distance}, one entry per class present.

    Raises:
      ValueError: on mismatched lengths, a sample size out of range, or a class
        with a single sample (it has no in-class distance).
    """
    x = _check_data(x, labels)
    labels = np.asarray(labels)
    if not 2 <= sample_size <= min(len(x), MAX_WIDTH_SAMPLE):
        raise ValueError(
            f"sample_size must be between 2 and {min(len(x), MAX_WIDTH_SAMPLE)} "
            f"(the number of examples, at most {MAX_WIDTH_SAMPLE}), got "
            f"{sample_size}."
        )
    rng = np.random.default_rng(seed)
    distances = {}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            raise ValueError(
                f"class {label} has a single sample, so it has no in-class "
                f"distance; use more training examples."
            )
        if len(members) > sample_size:
            members = rng.choice(members, size=sample_size, replace=False)
        points = x[members].astype(np.float64)
        matrix = scipy.spatial.distance_matrix(points, points)  # [s, s]
        count = len(points) * (len(points) - 1)
        distances[int(label)] = float(matrix.sum() / count)
    return distances


def in_class_width(
    x: np.ndarray, labels: np.ndarray, sample_size: int = 500, seed: int = 0
) -> float:
    """The exercise's width: the mean of `in_class_distances` over classes.

    Args and Raises: as `in_class_distances`.

    Returns:
      A positive float, to use as every unit's sigma.
    """
    distances = in_class_distances(x, labels, sample_size, seed)
    return float(np.mean(list(distances.values())))
