"""Tests of the center and width choices in `rbf_tf.initializers`."""

import warnings
from unittest import mock

import numpy as np
import scipy.spatial.distance
from absl.testing import absltest, parameterized

from rbf_tf import GaussianRBF, initializers

# Three classes with labels that are neither 0-based nor contiguous, each a tight
# Gaussian blob around its own mean, the means 10 apart per coordinate.
BLOB_LABELS = (2, 5, 7)
BLOB_STD = 0.2
BLOB_SIZE = 100
INPUT_DIM = 4


def make_blobs(seed=0):
    """Returns x [300, 4] float32, labels [300] int64 and means [3, 4] float64."""
    rng = np.random.default_rng(seed)
    means = 10.0 * np.arange(len(BLOB_LABELS))[:, None] * np.ones(INPUT_DIM)
    x = np.concatenate(
        [
            mean + BLOB_STD * rng.standard_normal((BLOB_SIZE, INPUT_DIM))
            for mean in means
        ]
    ).astype(np.float32)
    labels = np.repeat(BLOB_LABELS, BLOB_SIZE).astype(np.int64)
    order = rng.permutation(len(x))
    return x[order], labels[order], means


def row_index(x, mu):
    """For each column of mu [n, m], the index of the row of x [N, n] equal to it."""
    matches = np.all(x[:, :, None] == mu[None, :, :], axis=1)  # [N, m]
    assert np.all(matches.sum(axis=0) >= 1), "a center is not a training sample"
    return matches.argmax(axis=0)


class KMeansTest(parameterized.TestCase):
    def test_every_center_lies_in_a_blob_and_every_blob_has_one(self):
        x, labels, means = make_blobs()
        mu = initializers.centers_kmeans(x, 30, seed=0)

        self.assertEqual(mu.shape, (INPUT_DIM, 30))
        self.assertEqual(mu.dtype, np.float64)
        to_means = scipy.spatial.distance.cdist(mu.T, means)  # [30, 3]
        radius = max(
            np.linalg.norm(x[labels == label] - mean, axis=1).max()
            for label, mean in zip(BLOB_LABELS, means, strict=True)
        )
        self.assertLessEqual(to_means.min(axis=1).max(), radius * (1 + 1e-12))
        self.assertLess(radius, 2.0)
        np.testing.assert_array_equal(np.unique(to_means.argmin(axis=1)), [0, 1, 2])

    def test_each_center_is_the_mean_of_the_samples_nearest_to_it(self):
        x, _, _ = make_blobs()
        mu = initializers.centers_kmeans(x, 30, seed=0, iterations=50)

        nearest = scipy.spatial.distance.cdist(x, mu.T).argmin(axis=1)  # [300]
        for unit in range(30):
            members = x[nearest == unit].astype(np.float64)
            self.assertNotEmpty(members)
            np.testing.assert_allclose(mu[:, unit], members.mean(axis=0), atol=1e-9)

    def test_same_seed_same_centers_other_seed_other_centers(self):
        x, _, _ = make_blobs()
        first = initializers.centers_kmeans(x, 12, seed=3)
        np.testing.assert_array_equal(first, initializers.centers_kmeans(x, 12, seed=3))
        self.assertFalse(np.allclose(first, initializers.centers_kmeans(x, 12, seed=4)))

    def test_sample_size_bounds_the_data_seen(self):
        x, _, _ = make_blobs()
        # With as many subset samples as centers, every cluster is one sample.
        mu = initializers.centers_kmeans(x, 5, seed=0, sample_size=5)
        self.assertLen(np.unique(row_index(x, mu)), 5)

    def test_empty_clusters_leave_finite_centers_and_no_warning(self):
        # Two distinct points, ten copies each: four starting centers must repeat
        # a point, so at least two clusters are empty after the first step.
        points = np.array([[0.0, 0.0], [3.0, 4.0]])
        x = np.repeat(points, 10, axis=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mu = initializers.centers_kmeans(x, 4, seed=0)

        self.assertEmpty(caught)
        self.assertTrue(np.all(np.isfinite(mu)))
        self.assertLess(len(np.unique(mu.T, axis=0)), 4)

    @parameterized.named_parameters(
        ("more_units_than_examples", 301, {}, r"between 1 and 300 units .* got 301"),
        (
            "more_units_than_subset",
            11,
            {"sample_size": 10},
            r"between 1 and 10 units .*sample_size 10\), got 11",
        ),
        ("no_units", 0, {}, r"between 1 and 300 units .* got 0"),
        (
            "no_iterations",
            3,
            {"iterations": 0},
            r"iterations must be at least 1, got 0",
        ),
        ("no_subset", 3, {"sample_size": 0}, r"sample_size must be at least 1, got 0"),
    )
    def test_rejects_bad_arguments(self, units, kwargs, message):
        x, _, _ = make_blobs()
        with self.assertRaisesRegex(ValueError, message):
            initializers.centers_kmeans(x, units, seed=0, **kwargs)

    def test_rejects_non_finite_data(self):
        x, _, _ = make_blobs()
        x[7, 1] = np.nan
        with self.assertRaisesRegex(ValueError, r"must be finite, got a NaN or Inf"):
            initializers.centers_kmeans(x, 3, seed=0)


class ClassBalancedTest(parameterized.TestCase):
    @parameterized.parameters((3, [1, 1, 1]), (10, [4, 3, 3]), (11, [4, 4, 3]))
    def test_counts_per_class_are_exact(self, units, counts):
        x, labels, _ = make_blobs()
        mu = initializers.centers_class_balanced(x, labels, units, seed=0)

        index = row_index(x, mu)
        self.assertEqual(mu.shape, (INPUT_DIM, units))
        self.assertLen(np.unique(index), units)
        chosen, found = np.unique(labels[index], return_counts=True)
        np.testing.assert_array_equal(chosen, BLOB_LABELS)
        np.testing.assert_array_equal(found, counts)

    def test_same_seed_same_centers_other_seed_other_centers(self):
        x, labels, _ = make_blobs()
        first = initializers.centers_class_balanced(x, labels, 9, seed=1)
        again = initializers.centers_class_balanced(x, labels, 9, seed=1)
        other = initializers.centers_class_balanced(x, labels, 9, seed=2)
        np.testing.assert_array_equal(first, again)
        self.assertFalse(np.array_equal(first, other))

    def test_a_class_may_be_used_up_exactly(self):
        x, labels, _ = make_blobs()
        mu = initializers.centers_class_balanced(x, labels, 3 * BLOB_SIZE, seed=0)
        self.assertLen(np.unique(row_index(x, mu)), 3 * BLOB_SIZE)

    @parameterized.named_parameters(
        ("too_few_in_a_class", 10, r"class 7 needs 3 .* has only 2 samples"),
        ("fewer_units_than_classes", 2, r"at least 3 units, got 2"),
        ("more_units_than_examples", 23, r"cannot choose 23 centers from 22 examples"),
    )
    def test_rejects_impossible_requests(self, units, message):
        labels = np.array([2] * 10 + [5] * 10 + [7] * 2)
        x = np.arange(len(labels) * 2, dtype=np.float64).reshape(-1, 2)
        with self.assertRaisesRegex(ValueError, message):
            initializers.centers_class_balanced(x, labels, units, seed=0)


class MakeCentersTest(parameterized.TestCase):
    def test_random_is_the_exercise_recipe_with_sample_labels(self):
        x, labels, _ = make_blobs()
        centers = initializers.make_centers("random", x, labels, 20, seed=4)

        np.testing.assert_array_equal(
            centers.mu, initializers.centers_from_samples(x, 20, seed=4)
        )
        np.testing.assert_array_equal(centers.labels, labels[row_index(x, centers.mu)])

    def test_kmeans_labels_are_those_of_the_blob_each_center_lies_in(self):
        x, labels, means = make_blobs()
        centers = initializers.make_centers("kmeans", x, labels, 30, seed=0)

        np.testing.assert_array_equal(
            centers.mu, initializers.centers_kmeans(x, 30, seed=0)
        )
        blob = scipy.spatial.distance.cdist(centers.mu.T, means).argmin(axis=1)
        np.testing.assert_array_equal(centers.labels, np.array(BLOB_LABELS)[blob])

    def test_class_balanced_labels_are_those_of_the_chosen_samples(self):
        x, labels, _ = make_blobs()
        centers = initializers.make_centers("class_balanced", x, labels, 7, seed=0)

        np.testing.assert_array_equal(
            centers.mu, initializers.centers_class_balanced(x, labels, 7, seed=0)
        )
        np.testing.assert_array_equal(centers.labels, labels[row_index(x, centers.mu)])
        np.testing.assert_array_equal(centers.labels, [2, 2, 2, 5, 5, 7, 7])

    @parameterized.parameters(*initializers.CENTER_METHODS)
    def test_every_method_fits_a_gaussian_layer(self, method):
        x, labels, _ = make_blobs()
        centers = initializers.make_centers(method, x, labels, 6, seed=0)
        sigma = initializers.make_widths("nearest_centers", x, labels, centers)

        layer = GaussianRBF(INPUT_DIM, 6, mu=centers.mu, sigma=sigma)
        self.assertEqual(layer(x[:5]).shape, (5, 6))

    def test_rejects_unknown_method(self):
        x, labels, _ = make_blobs()
        with self.assertRaisesRegex(
            ValueError,
            r"one of \('random', 'kmeans', 'class_balanced'\), got 'k-means'",
        ):
            initializers.make_centers("k-means", x, labels, 3, seed=0)

    def test_rejects_more_units_than_examples(self):
        x, labels, _ = make_blobs()
        with self.assertRaisesRegex(ValueError, r"cannot choose 301 centers from 300"):
            initializers.make_centers("random", x, labels, 301, seed=0)


class CenterLabelsTest(parameterized.TestCase):
    def test_label_of_the_nearest_sample(self):
        x = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
        labels = np.array([4, 8, 9])
        mu = np.array([[9.0, 1.0], [0.5, 0.0], [1.0, 8.0], [0.0, 0.0]]).T
        with self.subTest("one chunk"):
            np.testing.assert_array_equal(
                initializers.center_labels(x, labels, mu), [8, 4, 9, 4]
            )
        with self.subTest("one sample per chunk"):
            with mock.patch.object(initializers, "LABEL_CHUNK", 1):
                found = initializers.center_labels(x, labels, mu)
            np.testing.assert_array_equal(found, [8, 4, 9, 4])

    @parameterized.parameters(1, 10)
    def test_identical_samples_give_the_first_label_in_data_order(self, chunk):
        x = np.array([[5.0, 5.0], [1.0, 2.0], [0.0, 0.0], [1.0, 2.0]])
        labels = np.array([0, 3, 1, 6])
        with mock.patch.object(initializers, "LABEL_CHUNK", chunk):
            found = initializers.center_labels(x, labels, np.array([[1.0], [2.0]]))
        np.testing.assert_array_equal(found, [3])

    def test_rejects_centers_of_another_width(self):
        x = np.zeros((3, 2))
        with self.assertRaisesRegex(ValueError, r"shape \[2, units\] .* got shape"):
            initializers.center_labels(x, np.zeros(3), np.zeros((3, 4)))

    def test_centers_rejects_mismatched_labels(self):
        with self.assertRaisesRegex(ValueError, r"labels must have shape \[4\]"):
            initializers.Centers(np.zeros((2, 4)), np.zeros(3))
        with self.assertRaisesRegex(ValueError, r"mu must have shape \[input_dim"):
            initializers.Centers(np.zeros(4), np.zeros(4))


class MakeWidthsTest(parameterized.TestCase):
    def test_in_class_is_the_global_width_for_every_unit(self):
        x, labels, _ = make_blobs()
        centers = initializers.make_centers("random", x, labels, 8, seed=0)
        sigma = initializers.make_widths("in_class", x, labels, centers, seed=0)

        self.assertEqual(sigma.shape, (8,))
        self.assertEqual(sigma.dtype, np.float64)
        expected = np.mean(
            [
                scipy.spatial.distance.pdist(x[labels == label].astype(float)).mean()
                for label in BLOB_LABELS
            ]
        )
        np.testing.assert_allclose(sigma, expected, rtol=1e-10)

    @parameterized.parameters("random", "kmeans", "class_balanced")
    def test_per_class_is_the_mean_distance_within_each_center_class(self, method):
        x, labels, _ = make_blobs()
        # Blobs of different spreads, so that the classes' widths differ.
        spread = np.select([labels == 2, labels == 5], [1.0, 2.0], 3.0)  # [300]
        x = x * spread.astype(np.float32)[:, None]
        centers = initializers.make_centers(method, x, labels, 9, seed=0)
        sigma = initializers.make_widths("per_class", x, labels, centers, seed=0)

        expected = {
            label: scipy.spatial.distance.pdist(x[labels == label].astype(float)).mean()
            for label in BLOB_LABELS
        }
        np.testing.assert_allclose(
            sigma, [expected[label] for label in centers.labels], rtol=1e-10
        )
        self.assertLen(np.unique(np.round(sigma, 6)), len(set(centers.labels)))

    def test_per_class_falls_back_to_the_mean_over_classes_for_a_point_class(self):
        x = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [1.0, 1.0]])
        labels = np.array([0, 0, 1, 1])
        centers = initializers.Centers(x.T, labels)
        sigma = initializers.make_widths("per_class", x, labels, centers, seed=0)
        np.testing.assert_allclose(sigma, [5.0, 5.0, 2.5, 2.5])

    @parameterized.parameters(1, 3, 7, 50)
    def test_nearest_centers_matches_brute_force(self, neighbors):
        x, labels, _ = make_blobs()
        mu = np.random.default_rng(0).standard_normal((INPUT_DIM, 8))
        centers = initializers.Centers(mu, np.full(8, 2))
        sigma = initializers.make_widths(
            "nearest_centers", x, labels, centers, neighbors=neighbors
        )

        expected = []
        for unit in range(8):
            distances = [
                np.sqrt(np.sum((mu[:, unit] - mu[:, other]) ** 2))
                for other in range(8)
                if other != unit
            ]
            expected.append(np.mean(sorted(distances)[:neighbors]))
        np.testing.assert_allclose(sigma, expected, rtol=1e-12)

    def test_nearest_centers_skips_coincident_centers(self):
        x, labels, _ = make_blobs()
        mu = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [0.0, 8.0]]).T
        centers = initializers.Centers(mu, np.full(4, 2))
        sigma = initializers.make_widths(
            "nearest_centers", x, labels, centers, neighbors=1
        )
        np.testing.assert_allclose(sigma, [5.0, 5.0, 5.0, 5.0])
        sigma = initializers.make_widths(
            "nearest_centers", x, labels, centers, neighbors=2
        )
        np.testing.assert_allclose(sigma, [6.5, 6.5, 5.0, 6.5])

    def test_nearest_centers_all_coincident_falls_back_to_in_class(self):
        x, labels, _ = make_blobs()
        centers = initializers.Centers(np.ones((INPUT_DIM, 3)), np.full(3, 2))
        sigma = initializers.make_widths("nearest_centers", x, labels, centers, seed=1)
        np.testing.assert_allclose(
            sigma, initializers.in_class_width(x, labels, len(x), 1), rtol=1e-12
        )
        self.assertTrue(np.all(sigma > 0))

    def test_kmeans_centers_with_empty_clusters_get_positive_widths(self):
        # Four distinct points, five copies each: eight starting centers must
        # repeat a point, so clusters go empty and centers coincide.
        points = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 4.0], [4.0, 4.0]])
        x = np.repeat(points, 5, axis=0)
        labels = np.repeat([0, 1], 10)
        centers = initializers.make_centers("kmeans", x, labels, 8, seed=0)
        self.assertLess(len(np.unique(centers.mu.T, axis=0)), 8)
        for method in initializers.WIDTH_METHODS:
            with self.subTest(method):
                sigma = initializers.make_widths(method, x, labels, centers)
                self.assertTrue(np.all(np.isfinite(sigma)) and np.all(sigma > 0))

    def test_rejects_unknown_method(self):
        x, labels, _ = make_blobs()
        centers = initializers.make_centers("random", x, labels, 3, seed=0)
        with self.assertRaisesRegex(
            ValueError,
            r"one of \('in_class', 'per_class', 'nearest_centers'\), got 'nearest'",
        ):
            initializers.make_widths("nearest", x, labels, centers)

    def test_rejects_a_bare_array_of_centers(self):
        x, labels, _ = make_blobs()
        with self.assertRaisesRegex(TypeError, r"must be a Centers, got ndarray"):
            initializers.make_widths("in_class", x, labels, np.zeros((INPUT_DIM, 3)))

    def test_rejects_centers_of_an_unknown_class(self):
        x, labels, _ = make_blobs()
        centers = initializers.Centers(np.zeros((INPUT_DIM, 2)), np.array([2, 3]))
        with self.assertRaisesRegex(ValueError, r"classes .*\[2, 5, 7\], got .*\[3\]"):
            initializers.make_widths("per_class", x, labels, centers)

    @parameterized.named_parameters(
        ("no_neighbors", 3, 0, r"neighbors must be at least 1, got 0"),
        ("one_center", 1, 3, r"at least 2 centers, got 1"),
    )
    def test_nearest_centers_rejects(self, units, neighbors, message):
        x, labels, _ = make_blobs()
        centers = initializers.Centers(np.ones((INPUT_DIM, units)), np.full(units, 2))
        with self.assertRaisesRegex(ValueError, message):
            initializers.make_widths(
                "nearest_centers", x, labels, centers, neighbors=neighbors
            )

    @parameterized.parameters(*initializers.WIDTH_METHODS)
    def test_rejects_zero_widths_when_every_class_is_one_point(self, method):
        x = np.repeat(np.array([[1.0, 2.0], [4.0, 6.0]]), 3, axis=0)
        labels = np.repeat([0, 1], 3)
        centers = initializers.Centers(np.zeros((2, 2)), np.array([0, 1]))
        with self.assertRaisesRegex(ValueError, r"widths must be positive, got 2 zero"):
            initializers.make_widths(method, x, labels, centers)


if __name__ == "__main__":
    absltest.main()
