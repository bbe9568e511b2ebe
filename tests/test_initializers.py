"""Tests of the data-driven initial values: centers from samples, in-class widths.

The statistics are checked against an independent computation with
`scipy.spatial.distance.pdist` on small data sets.
"""

import numpy as np
import pytest
import scipy.spatial.distance

from rbf_tf import initializers


def labelled_data(seed=0, per_class=(7, 12, 5), width=6):
    """[sum(per_class), width] float64 data with labels 0, 1, ..., shuffled.

    Each class sits around its own mean, so in-class distances differ by class.
    """
    rng = np.random.default_rng(seed)
    x = np.concatenate(
        [
            rng.normal(3.0 * c, 1.0 + c, (size, width))
            for c, size in enumerate(per_class)
        ]
    )
    labels = np.repeat(np.arange(len(per_class)), per_class)
    order = rng.permutation(len(x))
    return x[order], labels[order]


def pdist_mean_by_class(x, labels):
    """{label: mean distance over distinct pairs of that class}, by scipy.pdist."""
    return {
        int(label): float(np.mean(scipy.spatial.distance.pdist(x[labels == label])))
        for label in np.unique(labels)
    }


# centers_from_samples


def test_centers_have_the_layout_of_mu():
    x, _ = labelled_data()

    mu = initializers.centers_from_samples(x, units=4, seed=0)

    assert mu.shape == (6, 4)
    assert mu.dtype == np.float64


def test_centers_are_training_samples():
    x, _ = labelled_data()

    mu = initializers.centers_from_samples(x, units=10, seed=3)

    for center in mu.T:
        assert np.any(np.all(x == center, axis=1))


def test_centers_are_drawn_without_replacement():
    x, _ = labelled_data()

    mu = initializers.centers_from_samples(x, units=len(x), seed=1)

    # Taking every sample once is only possible without replacement.
    np.testing.assert_array_equal(np.sort(mu.T, axis=0), np.sort(x, axis=0))
    assert len(np.unique(mu.T, axis=0)) == len(x)


def test_centers_are_seeded_and_reproducible():
    x, _ = labelled_data()

    first = initializers.centers_from_samples(x, units=5, seed=11)
    again = initializers.centers_from_samples(x, units=5, seed=11)
    other = initializers.centers_from_samples(x, units=5, seed=12)

    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_centers_accept_integer_pixels():
    x = np.arange(30, dtype=np.uint8).reshape(10, 3)

    mu = initializers.centers_from_samples(x, units=3, seed=0)

    assert mu.dtype == np.float64
    for center in mu.T:
        assert np.any(np.all(x == center, axis=1))


def test_more_units_than_examples_is_an_error():
    x, _ = labelled_data()

    with pytest.raises(ValueError, match=f"cannot choose 25 centers from {len(x)}"):
        initializers.centers_from_samples(x, units=25)


@pytest.mark.parametrize("units", [0, -2])
def test_units_below_one_is_an_error(units):
    x, _ = labelled_data()

    with pytest.raises(ValueError, match=f"units must be at least 1, got {units}"):
        initializers.centers_from_samples(x, units=units)


@pytest.mark.parametrize("shape", [(24,), (4, 3, 2)])
def test_centers_from_data_of_wrong_rank_is_an_error(shape):
    with pytest.raises(ValueError, match=r"\[num_examples, input_dim\], got shape"):
        initializers.centers_from_samples(np.zeros(shape), units=2)


# in_class_distances and in_class_width


def test_in_class_distances_are_exact_when_the_sample_covers_each_class():
    x, labels = labelled_data()

    distances = initializers.in_class_distances(x, labels, sample_size=12)

    expected = pdist_mean_by_class(x, labels)
    assert sorted(distances) == sorted(expected)
    for label, value in expected.items():
        assert distances[label] == pytest.approx(value, rel=1e-12)


def test_in_class_width_is_the_mean_over_classes():
    x, labels = labelled_data()

    width = initializers.in_class_width(x, labels, sample_size=20)

    expected = np.mean(list(pdist_mean_by_class(x, labels).values()))
    assert width == pytest.approx(expected, rel=1e-12)


def test_in_class_distances_use_labels_as_given():
    x, labels = labelled_data()

    distances = initializers.in_class_distances(x, labels * 3 + 1, sample_size=12)

    assert sorted(distances) == [1, 4, 7]


def test_in_class_subsets_are_drawn_without_replacement():
    # Every two distinct points of this class are exactly 1 apart, so any subset
    # of distinct points has a mean distance of 1; a repeated point would add a
    # zero distance and pull the mean down.
    x = np.eye(40) / np.sqrt(2.0)
    labels = np.zeros(40, dtype=int)

    for seed in range(5):
        distances = initializers.in_class_distances(x, labels, sample_size=8, seed=seed)
        assert distances[0] == pytest.approx(1.0, rel=1e-12)


def test_in_class_subsets_estimate_the_full_statistic():
    x, labels = labelled_data(per_class=(300, 300), width=4)
    exact = pdist_mean_by_class(x, labels)

    estimate = initializers.in_class_distances(x, labels, sample_size=100, seed=0)

    for label, value in exact.items():
        assert estimate[label] == pytest.approx(value, rel=0.05)
        assert estimate[label] != pytest.approx(value, rel=1e-9)


def test_in_class_distances_are_seeded_and_reproducible():
    x, labels = labelled_data(per_class=(50, 50))

    first = initializers.in_class_distances(x, labels, sample_size=10, seed=2)
    again = initializers.in_class_distances(x, labels, sample_size=10, seed=2)
    other = initializers.in_class_distances(x, labels, sample_size=10, seed=3)

    assert first == again
    assert first != other


@pytest.mark.parametrize("sample_size", [1, 25, initializers.MAX_WIDTH_SAMPLE + 1])
def test_sample_size_out_of_range_is_an_error(sample_size):
    x, labels = labelled_data()

    with pytest.raises(
        ValueError, match=f"sample_size must be between 2 and 24 .*got {sample_size}"
    ):
        initializers.in_class_distances(x, labels, sample_size=sample_size)


def test_class_with_a_single_sample_is_an_error():
    x, labels = labelled_data(per_class=(5, 1, 4))

    with pytest.raises(ValueError, match="class 1 has a single sample"):
        initializers.in_class_width(x, labels, sample_size=5)


@pytest.mark.parametrize(
    "labels_shape", [(23,), (25,), (24, 1)], ids=["short", "long", "rank_2"]
)
def test_labels_not_matching_the_data_are_an_error(labels_shape):
    x, _ = labelled_data()

    with pytest.raises(
        ValueError,
        match=rf"labels must have shape \[24\] .*got shape \({labels_shape[0]},",
    ):
        initializers.in_class_distances(x, np.zeros(labels_shape, int), sample_size=5)


@pytest.mark.parametrize("shape", [(24,), (24, 3, 2)])
def test_in_class_data_of_wrong_rank_is_an_error(shape):
    with pytest.raises(ValueError, match=r"\[num_examples, input_dim\], got shape"):
        initializers.in_class_distances(np.zeros(shape), np.zeros(24, int))


def test_non_numeric_data_is_a_type_error():
    with pytest.raises(TypeError, match="data must be numeric, got dtype"):
        initializers.in_class_width(np.full((4, 2), "a"), [0, 0, 1, 1], sample_size=2)
