"""Initial values for a `GaussianRBF` layer, taken from training data.

The recipe: centers are training samples drawn at random without replacement,
every width is the typical distance between two samples of the same class, and
every weight is 1. All functions take NumPy arrays and return NumPy arrays;
randomness comes only from the `seed` argument.

Beyond the recipe, `make_centers` chooses centers by one of CENTER_METHODS
(random samples, k-means cluster means, or an equal number of samples per class)
and `make_widths` chooses widths by one of WIDTH_METHODS (the global in-class
distance, the in-class distance of each center's own class, or the distance from
each center to its nearest other centers).
"""

import dataclasses
import warnings
from typing import Dict

import numpy as np
import scipy.cluster.vq
import scipy.spatial
import scipy.spatial.distance

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
      ValueError: if `units` is below 1 or exceeds the number of examples.
    """
    x = _check_data(x)
    if units < 1:
        raise ValueError(f"units must be at least 1, got {units}.")
    if units > len(x):
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


CENTER_METHODS = ("random", "kmeans", "class_balanced")
WIDTH_METHODS = ("in_class", "per_class", "nearest_centers")

# k-means sees a random subset of at most KMEANS_SAMPLE_SIZE samples. Each of its
# KMEANS_ITERATIONS steps compares every subset sample with every center, about
# s * m * n multiply-adds: 7.8e9 for s = 10,000, m = 1,000 and n = 784, a fraction
# of a second with BLAS. The subset itself is an s x n float64 copy, 63 MB here.
KMEANS_SAMPLE_SIZE = 10_000
KMEANS_ITERATIONS = 20

# Neighbours averaged by the "nearest_centers" width. The m x m matrix of
# distances between centers takes 8 * m^2 bytes: 8 MB for 1,000 centers.
NEAREST_CENTERS_NEIGHBORS = 3

# Training samples compared with all m centers at once in `center_labels`: a
# chunk x n float64 copy and a chunk x m distance block, 63 MB and 80 MB for
# 10,000 samples of width 784 and 1,000 centers.
LABEL_CHUNK = 10_000


@dataclasses.dataclass(frozen=True, eq=False)
class Centers:
    """Centers for a `GaussianRBF` layer and the class each one stands for.

    Attributes:
      mu: [input_dim, units] float64 array, one center per column (the layout of
        `GaussianRBF.mu`).
      labels: [units] array of class labels: for a center drawn from the data,
        the label of that sample; for any other center, the label of the
        training sample nearest to it (see `center_labels`). The "per_class"
        width reads it.
    """

    mu: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        mu = np.asarray(self.mu, dtype=np.float64)
        labels = np.asarray(self.labels)
        if mu.ndim != 2:
            raise ValueError(
                f"mu must have shape [input_dim, units], got shape {mu.shape}."
            )
        if labels.shape != (mu.shape[1],):
            raise ValueError(
                f"labels must have shape [{mu.shape[1]}] to match mu of shape "
                f"{mu.shape}, got shape {labels.shape}."
            )
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "labels", labels)

    @property
    def units(self) -> int:
        """The number of centers m."""
        return self.mu.shape[1]


def centers_kmeans(
    x: np.ndarray,
    units: int,
    seed: int = 0,
    sample_size: int = KMEANS_SAMPLE_SIZE,
    iterations: int = KMEANS_ITERATIONS,
) -> np.ndarray:
    """k-means cluster means as centers, found on a random subset of the data.

    Draws min(sample_size, num_examples) distinct samples, starts
    `scipy.cluster.vq.kmeans2` from `units` of them chosen at random
    (minit="points") and runs `iterations` steps of Lloyd's algorithm, which
    moves each center to the mean of the samples nearest to it. The subset
    bounds time and memory whatever the size of the data (see
    KMEANS_SAMPLE_SIZE).

    A cluster that a step leaves without samples keeps its previous position,
    which began as a training sample, so every center stays finite. Only
    repeated samples leave clusters empty in practice, and then two centers can
    coincide; the "nearest_centers" width allows for that.

    Args:
      x: [num_examples, input_dim] finite numeric array of training inputs.
      units: number of centers m, 1 to min(num_examples, sample_size).
      seed: seeds the subset and the starting centers.
      sample_size: largest number of samples the clustering sees, at least 1.
      iterations: steps of Lloyd's algorithm, at least 1.

    Returns:
      [input_dim, units] float64 array, one center per column.

    Raises:
      ValueError: if `units`, `sample_size` or `iterations` is out of range, or
        the subset holds a NaN or an infinity.
    """
    x = _check_data(x)
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}.")
    if sample_size < 1:
        raise ValueError(f"sample_size must be at least 1, got {sample_size}.")
    size = min(sample_size, len(x))
    if not 1 <= units <= size:
        raise ValueError(
            f"k-means needs between 1 and {size} units (the smaller of "
            f"{len(x)} examples and sample_size {sample_size}), got {units}."
        )

    rng = np.random.default_rng(seed)
    subset = rng.choice(len(x), size=size, replace=False)
    points = x[subset].astype(np.float64)  # [s, n]
    if not np.all(np.isfinite(points)):
        raise ValueError("data for k-means must be finite, got a NaN or Inf.")

    # kmeans2 warns on every empty cluster and then keeps its previous position,
    # which is the documented behaviour here, so the warning is dropped.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="One of the clusters is empty")
        means, _ = scipy.cluster.vq.kmeans2(
            points,
            units,
            iter=iterations,
            minit="points",
            missing="warn",
            check_finite=False,
            seed=rng,
        )  # [m, n]
    return means.T  # [n, m]


def _class_balanced_index(labels: np.ndarray, units: int, seed: int) -> np.ndarray:
    """Indices of `units` samples, as many from each class as can be equal."""
    classes, counts = np.unique(labels, return_counts=True)
    if units > len(labels):
        raise ValueError(
            f"cannot choose {units} centers from {len(labels)} examples without "
            f"replacement; use at most {len(labels)} units or more data."
        )
    if units < len(classes):
        raise ValueError(
            f"class-balanced centers need at least one unit per class, so at "
            f"least {len(classes)} units, got {units}."
        )

    # The first units % num_classes classes, in sorted label order, take one
    # center more than the others.
    wanted = np.full(len(classes), units // len(classes))
    wanted[: units % len(classes)] += 1
    for label, need, have in zip(classes, wanted, counts, strict=True):
        if need > have:
            raise ValueError(
                f"class {label} needs {need} class-balanced centers but has only "
                f"{have} samples; use fewer units or more samples of that class."
            )

    rng = np.random.default_rng(seed)
    index = [
        rng.choice(np.flatnonzero(labels == label), size=need, replace=False)
        for label, need in zip(classes, wanted, strict=True)
    ]
    return np.concatenate(index)


def centers_class_balanced(
    x: np.ndarray, labels: np.ndarray, units: int, seed: int = 0
) -> np.ndarray:
    """Picks the same number of distinct training samples from every class.

    With c classes, every class gives units // c samples, drawn at random
    without replacement, and the first units % c classes in sorted label order
    give one more. Columns come grouped by class in that order.

    Args:
      x: [num_examples, input_dim] array of training inputs.
      labels: [num_examples] class labels.
      units: number of centers m, from the number of classes to num_examples.
      seed: seeds the choice.

    Returns:
      [input_dim, units] float64 array, one center per column.

    Raises:
      ValueError: if the lengths differ, `units` is below the number of classes
        or above num_examples, or a class has fewer samples than its share.
    """
    x = _check_data(x, labels)
    index = _class_balanced_index(np.asarray(labels), units, seed)
    return x[index].astype(np.float64).T


def center_labels(x: np.ndarray, labels: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """The label of the training sample nearest to each center.

    A center that is itself a training sample gets that sample's label; where
    identical samples carry different labels, the first in data order wins.
    The data is read LABEL_CHUNK samples at a time, so memory stays bounded.

    Args:
      x: [num_examples, input_dim] array of training inputs.
      labels: [num_examples] class labels.
      mu: [input_dim, units] array of centers, one per column.

    Returns:
      [units] array of labels, of the dtype of `labels`.

    Raises:
      ValueError: if the lengths differ or `mu` does not have input_dim rows.
    """
    x = _check_data(x, labels)
    labels = np.asarray(labels)
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2 or mu.shape[0] != x.shape[1]:
        raise ValueError(
            f"mu must have shape [{x.shape[1]}, units] to match data of shape "
            f"{x.shape}, got shape {mu.shape}."
        )

    centers = mu.T  # [m, n]
    best = np.full(len(centers), np.inf)  # [m]
    nearest = np.zeros(len(centers), dtype=np.int64)  # [m]
    for start in range(0, len(x), LABEL_CHUNK):
        chunk = x[start : start + LABEL_CHUNK].astype(np.float64)  # [c, n]
        index, distance = scipy.cluster.vq.vq(centers, chunk)  # [m], [m]
        closer = distance < best
        best[closer] = distance[closer]
        nearest[closer] = index[closer] + start
    return labels[nearest]


def make_centers(
    method: str, x: np.ndarray, labels: np.ndarray, units: int, seed: int = 0
) -> Centers:
    """Chooses `units` centers by one of CENTER_METHODS.

    Methods:
      "random": distinct training samples at random, the exercise's recipe
        (`centers_from_samples`).
      "kmeans": k-means cluster means, with the defaults of `centers_kmeans`.
      "class_balanced": an equal share of samples from every class
        (`centers_class_balanced`).

    Args:
      method: one of CENTER_METHODS.
      x: [num_examples, input_dim] array of training inputs.
      labels: [num_examples] class labels.
      units: number of centers m.
      seed: seeds the choice.

    Returns:
      The centers and, per center, its class (see `Centers`). For "random" and
      "kmeans" the class is found by `center_labels`, a pass over the data that
      takes a few seconds on MNIST.

    Raises:
      ValueError: if `method` is unknown, or as the method's own function.
    """
    if method not in CENTER_METHODS:
        raise ValueError(
            f"center method must be one of {CENTER_METHODS}, got {method!r}."
        )
    x = _check_data(x, labels)
    labels = np.asarray(labels)

    if method == "class_balanced":
        index = _class_balanced_index(labels, units, seed)
        return Centers(x[index].astype(np.float64).T, labels[index])
    if method == "random":
        mu = centers_from_samples(x, units, seed)
    else:
        mu = centers_kmeans(x, units, seed)
    return Centers(mu, center_labels(x, labels, mu))


def _nearest_center_widths(mu: np.ndarray, neighbors: int) -> np.ndarray:
    """Mean distance from each center to its nearest centers at a positive distance.

    Returns a [units] float64 array, 0 where no other center lies at a positive
    distance.
    """
    points = mu.T  # [m, n]
    distances = scipy.spatial.distance.squareform(
        scipy.spatial.distance.pdist(points)
    )  # [m, m]
    distances[distances == 0] = np.inf  # itself and any center on the same spot

    k = min(neighbors, len(points) - 1)
    nearest = np.sort(distances, axis=1)[:, :k]  # [m, k]
    found = np.isfinite(nearest)
    count = found.sum(axis=1)  # [m]
    total = np.where(found, nearest, 0.0).sum(axis=1)  # [m]
    return np.divide(total, count, out=np.zeros(len(points)), where=count > 0)


def make_widths(
    method: str,
    x: np.ndarray,
    labels: np.ndarray,
    centers: Centers,
    seed: int = 0,
    sample_size: int = 500,
    neighbors: int = NEAREST_CENTERS_NEIGHBORS,
) -> np.ndarray:
    """Chooses a width for every center by one of WIDTH_METHODS.

    Methods:
      "in_class": every unit gets the exercise's width, `in_class_width`.
      "per_class": each center gets the mean in-class distance of its own
        class, `in_class_distances`[centers.labels[i]]. A class whose samples
        all coincide (distance 0) gives its centers the mean over classes.
      "nearest_centers": each center gets its mean distance to its `neighbors`
        nearest other centers (all of them if there are fewer). Centers on the
        same spot do not count as neighbours; a center with no other center at
        a positive distance gets the `in_class_width` instead.

    Args:
      method: one of WIDTH_METHODS.
      x: [num_examples, input_dim] array of training inputs.
      labels: [num_examples] class labels.
      centers: the centers, from `make_centers` or built by hand.
      seed: seeds the subsets of the in-class distance estimate.
      sample_size: samples per class for the in-class distance estimate, as in
        `in_class_distances`, but capped at num_examples so that small data
        sets work with the default.
      neighbors: nearest centers averaged by "nearest_centers", at least 1.

    Returns:
      [units] float64 array of positive widths (the layout of
      `GaussianRBF.sigma`).

    Raises:
      TypeError: if `centers` is not a `Centers`.
      ValueError: if `method` is unknown, `neighbors` is below 1, there are
        fewer than 2 centers for "nearest_centers", a center's class has no
        training samples, a width comes out zero because all samples of every
        class coincide, or as `in_class_distances`.
    """
    if method not in WIDTH_METHODS:
        raise ValueError(
            f"width method must be one of {WIDTH_METHODS}, got {method!r}."
        )
    if not isinstance(centers, Centers):
        raise TypeError(f"centers must be a Centers, got {type(centers).__name__}.")
    x = _check_data(x, labels)
    # No class has more samples than the data, so the cap changes no estimate.
    sample_size = min(sample_size, len(x))

    if method == "in_class":
        sigma = np.full(centers.units, in_class_width(x, labels, sample_size, seed))
    elif method == "per_class":
        distances = in_class_distances(x, labels, sample_size, seed)
        missing = sorted(set(centers.labels.tolist()) - set(distances))
        if missing:
            raise ValueError(
                f"centers must belong to classes of the training data "
                f"{sorted(distances)}, got centers of classes {missing}."
            )
        sigma = np.array([distances[label] for label in centers.labels.tolist()])
        sigma[sigma == 0] = np.mean(list(distances.values()))
    else:
        if neighbors < 1:
            raise ValueError(f"neighbors must be at least 1, got {neighbors}.")
        if centers.units < 2:
            raise ValueError(
                f"nearest_centers widths need at least 2 centers, got {centers.units}."
            )
        sigma = _nearest_center_widths(centers.mu, neighbors)
        if np.any(sigma == 0):
            sigma[sigma == 0] = in_class_width(x, labels, sample_size, seed)

    if not np.all(sigma > 0):
        raise ValueError(
            f"{method} widths must be positive, got {np.sum(~(sigma > 0))} zero "
            f"widths because all samples of every class coincide."
        )
    return sigma.astype(np.float64)
