"""Tests of rbf_tf.datasets: IDX files, the registry, loading and pipelines."""

import dataclasses
import gzip
import hashlib
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from rbf_tf import datasets

# Published figures for MNIST.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_MEAN_PIXEL = 33.32

FASHION_DIR = datasets.DATASETS["fashion_mnist"].default_dir


def idx_bytes(array, type_code=0x08) -> bytes:
    """Returns the uncompressed IDX encoding of a uint8 array."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, type_code, array.ndim])
    header += np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.tobytes()


def write_idx(path, array, compress=False) -> str:
    """Writes `array` as an IDX file; returns the sha256 of its raw bytes."""
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return hashlib.sha256(raw).hexdigest()


def assert_message(error, path, *fragments):
    """Asserts that an exception's message names `path` and every fragment."""
    message = str(error.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message


@pytest.fixture(scope="module")
def mnist():
    return datasets.load_dataset("mnist")


def write_synthetic_dataset(directory, num_train, num_test, compress=True):
    """Writes four small IDX files of 2x3 images; returns arrays and checksums."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (num_train, 2, 3), dtype=np.uint8),
        "train_labels": np.arange(num_train, dtype=np.uint8) % 10,
        "test_images": rng.integers(0, 256, (num_test, 2, 3), dtype=np.uint8),
        "test_labels": np.arange(num_test, dtype=np.uint8)[::-1] % 10,
    }
    checksums = {}
    for role, array in arrays.items():
        name = datasets.DATASETS["mnist"].files[role] + (".gz" if compress else "")
        checksums[role] = write_idx(directory / name, array, compress)
    return arrays, checksums


def small_spec(name, directory, checksums, num_train, num_test):
    """A registry entry for the synthetic files of `write_synthetic_dataset`."""
    return dataclasses.replace(
        datasets.DATASETS[name],
        sha256=checksums,
        num_train=num_train,
        num_test=num_test,
        image_shape=(2, 3),
        default_dir=str(directory),
    )


# Shipped MNIST.


def test_mnist_shapes_dtypes_and_range(mnist):
    assert mnist.name == "mnist"
    assert mnist.num_classes == 10
    assert mnist.train_images.shape == (60000, 784)
    assert mnist.train_images.dtype == np.float32
    assert mnist.train_labels.shape == (60000,)
    assert mnist.train_labels.dtype == np.int64
    assert mnist.test_images.shape == (10000, 784)
    assert mnist.test_images.dtype == np.float32
    assert mnist.test_labels.shape == (10000,)
    assert mnist.test_labels.dtype == np.int64
    for images in (mnist.train_images, mnist.test_images):
        assert images.min() == 0.0
        assert images.max() == 1.0


def test_mnist_label_counts_are_the_published_ones(mnist):
    assert np.bincount(mnist.train_labels).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(mnist.test_labels).tolist() == MNIST_TEST_COUNTS


def test_mnist_mean_training_pixel(mnist):
    mean = mnist.train_images.mean(dtype=np.float64)
    np.testing.assert_allclose(mean, MNIST_MEAN_PIXEL / 255, atol=0.005 / 255)


def test_mnist_images_are_raw_pixels_over_255(mnist):
    path = os.path.join(
        datasets.DATASETS["mnist"].default_dir, "t10k-images-idx3-ubyte.gz"
    )
    raw = datasets.read_idx(path)  # [10000, 28, 28] uint8
    np.testing.assert_array_equal(
        mnist.test_images[:50], raw[:50].reshape(50, 784) / np.float32(255)
    )
    assert mnist.train_labels[:5].tolist() == [5, 0, 4, 1, 9]


def test_mnist_dataset_repr_shows_shapes(mnist):
    assert repr(mnist) == (
        "Dataset(name='mnist', train_images=(60000, 784), "
        "test_images=(10000, 784), num_classes=10)"
    )


# read_idx on small files.


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("shape", [(7,), (4, 2, 3)], ids=["labels", "images"])
def test_read_idx_round_trip(tmp_path, compress, shape):
    array = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape) * 7
    path = tmp_path / "data.idx"
    checksum = write_idx(path, array, compress)

    read = datasets.read_idx(path, expected_sha256=checksum, expected_shape=shape)
    np.testing.assert_array_equal(read, array)
    assert read.dtype == np.uint8
    assert read.flags.writeable


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    array = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    write_idx(tmp_path / "labels", array, compress=True)
    write_idx(tmp_path / "labels.gz", array, compress=False)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "labels"), array)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "labels.gz"), array)


def test_read_idx_reads_big_endian_dimensions(tmp_path):
    path = tmp_path / "hand_made.idx"
    path.write_bytes(
        b"\x00\x00\x08\x02" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x03" + bytes(6)
    )
    assert datasets.read_idx(path).shape == (2, 3)


def test_read_idx_accepts_uppercase_checksum(tmp_path):
    checksum = write_idx(tmp_path / "a.idx", [1, 2, 3])
    datasets.read_idx(tmp_path / "a.idx", expected_sha256=checksum.upper())


# read_idx errors: each names the file and what was wrong.


def test_read_idx_missing_file(tmp_path):
    path = tmp_path / "absent-idx1-ubyte.gz"
    with pytest.raises(datasets.MissingDataError) as error:
        datasets.read_idx(path)
    assert_message(error, path, "does not exist")
    assert isinstance(error.value, datasets.DataError)
    assert isinstance(error.value, FileNotFoundError)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_read_idx_truncated_data(tmp_path, compress):
    path = tmp_path / "short.idx"
    raw = idx_bytes(np.zeros((3, 2, 2)))[:-1]
    path.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(datasets.DataError) as error:
        datasets.read_idx(path)
    assert_message(error, path, "truncated", "(3, 2, 2)", "12 data bytes, got 11")


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "header.idx"
    path.write_bytes(idx_bytes(np.zeros((3, 2, 2)))[:10])
    with pytest.raises(datasets.DataError) as error:
        datasets.read_idx(path)
    assert_message(error, path, "truncated", "16-byte header", "got 10 bytes")


def test_read_idx_shorter_than_a_magic_number(tmp_path):
    path = tmp_path / "tiny.idx"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(datasets.DataError) as error:
        datasets.read_idx(path)
    assert_message(error, path, "truncated", "got 2 bytes")


def test_read_idx_trailing_bytes(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(idx_bytes(np.zeros(5)) + b"\x00\x00\x00")
    with pytest.raises(datasets.DataError) as error:
        datasets.read_idx(path)
    assert_message(error, path, "3 trailing bytes", "5 data bytes, got 8")


def test_read_idx_bad_magic(tmp_path):
    path = tmp_path / "not-idx.idx"
    path.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(datasets.DataError) as error:
        datasets.read_idx(path)
    assert_message(error, path, "magic number 0x504b0304", "0x00000801")


def test_read_idx_unsupported_element_type(tmp_path):
    path = tmp_path / "floats.idx"
    path.write_bytes(idx_bytes(np.zeros(4), type_code=0x0D))
    with pytest.raises(datasets.DataError) as error:
        datasets.read_idx(path)
    assert_message(error, path, "0x0d (float32)", "expected 0x08 (unsigned byte)")


def test_read_idx_zero_dimensions(tmp_path):
    path = tmp_path / "scalar.idx"
    path.write_bytes(b"\x00\x00\x08\x00\x07")
    with pytest.raises(datasets.DataError) as error:
        datasets.read_idx(path)
    assert_message(error, path, "0 dimensions")


def test_read_idx_wrong_checksum(tmp_path):
    path = tmp_path / "labels.idx"
    actual = write_idx(path, [1, 2, 3])
    expected = "0" * 64
    with pytest.raises(datasets.DataError) as error:
        datasets.read_idx(path, expected_sha256=expected)
    assert_message(error, path, f"sha256 {actual}", f"expected {expected}")


def test_read_idx_wrong_shape(tmp_path):
    path = tmp_path / "labels.idx"
    write_idx(path, [1, 2, 3])
    with pytest.raises(datasets.DataError) as error:
        datasets.read_idx(path, expected_shape=[4])
    assert_message(error, path, "shape (3,), expected (4,)")


def test_read_idx_corrupt_gzip_stream(tmp_path):
    path = tmp_path / "corrupt.gz"
    noise = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)
    compressed = bytearray(gzip.compress(idx_bytes(noise)))
    compressed[len(compressed) // 2 : len(compressed) // 2 + 8] = bytes(8)
    path.write_bytes(bytes(compressed))
    with pytest.raises(datasets.DataError) as error:
        datasets.read_idx(path)
    assert_message(error, path, "not a valid gzip stream")


def test_read_idx_truncated_gzip_stream(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(1000)))[:-12])
    with pytest.raises(datasets.DataError) as error:
        datasets.read_idx(path)
    assert_message(error, path, "not a valid gzip stream")


# load_dataset: the registry, data_dir and its errors.


def test_registry_names_and_shapes():
    assert sorted(datasets.DATASETS) == ["fashion_mnist", "mnist"]
    for name, spec in datasets.DATASETS.items():
        assert spec.name == name
        assert set(spec.files) == set(datasets.ROLES)
        assert all(re.fullmatch("[0-9a-f]{64}", spec.sha256[r]) for r in spec.files)
        assert spec.expected_shape("train_images") == (60000, 28, 28)
        assert spec.expected_shape("test_labels") == (10000,)


def test_shipped_mnist_files_are_the_registered_ones():
    spec = datasets.DATASETS["mnist"]
    for role in datasets.ROLES:
        path = os.path.join(spec.default_dir, spec.files[role] + ".gz")
        with gzip.open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == spec.sha256[role], path


def test_load_dataset_unknown_name():
    with pytest.raises(ValueError, match=r"'kmnist'.*\['fashion_mnist', 'mnist'\]"):
        datasets.load_dataset("kmnist")


def test_load_mnist_from_data_dir_gzip_and_raw(tmp_path, mnist):
    spec = datasets.DATASETS["mnist"]
    for role in ("train_images", "train_labels"):
        name = spec.files[role] + ".gz"
        shutil.copy(os.path.join(spec.default_dir, name), tmp_path / name)
    for role in ("test_images", "test_labels"):
        raw = datasets.read_idx(
            os.path.join(spec.default_dir, spec.files[role] + ".gz")
        )
        (tmp_path / spec.files[role]).write_bytes(idx_bytes(raw))

    loaded = datasets.load_dataset("mnist", data_dir=tmp_path)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert np.array_equal(getattr(loaded, field), getattr(mnist, field)), field


def test_load_mnist_from_data_dir_verifies_checksums(tmp_path):
    spec = datasets.DATASETS["mnist"]
    for role in datasets.ROLES:
        name = spec.files[role] + ".gz"
        shutil.copy(os.path.join(spec.default_dir, name), tmp_path / name)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(10000))

    with pytest.raises(datasets.DataError) as error:
        datasets.load_dataset("mnist", data_dir=tmp_path)
    assert_message(
        error,
        tmp_path / "t10k-labels-idx1-ubyte",
        f"expected {spec.sha256['test_labels']}",
    )


def test_load_mnist_from_data_dir_missing_file(tmp_path):
    write_synthetic_dataset(tmp_path, 3, 2)
    os.remove(tmp_path / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(datasets.MissingDataError) as error:
        datasets.load_dataset("mnist", data_dir=tmp_path)
    assert_message(
        error,
        tmp_path,
        "t10k-images-idx3-ubyte.gz or t10k-images-idx3-ubyte not found",
        "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
        "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]",
    )


def test_load_dataset_missing_directory(tmp_path):
    directory = tmp_path / "nowhere"
    with pytest.raises(datasets.MissingDataError) as error:
        datasets.load_dataset("mnist", data_dir=directory)
    assert_message(error, directory, "does not exist")


def test_load_fashion_mnist_missing_says_how_to_install(tmp_path, monkeypatch):
    spec = dataclasses.replace(
        datasets.DATASETS["fashion_mnist"], default_dir=str(tmp_path / "absent")
    )
    monkeypatch.setitem(datasets.DATASETS, "fashion_mnist", spec)
    with pytest.raises(datasets.MissingDataError) as error:
        datasets.load_dataset("fashion_mnist")
    assert_message(
        error,
        tmp_path / "absent",
        "cannot load fashion_mnist",
        "apt-get install dataset-fashion-mnist",
        "pass data_dir",
    )
    # A directory the user named gets no advice about the default one.
    with pytest.raises(datasets.MissingDataError) as error:
        datasets.load_dataset("fashion_mnist", data_dir=tmp_path)
    assert_message(error, tmp_path, "cannot load fashion_mnist")
    assert "apt-get" not in str(error.value)


def test_load_dataset_from_a_file_says_it_is_not_a_directory(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not data")
    with pytest.raises(datasets.MissingDataError) as error:
        datasets.load_dataset("mnist", data_dir=path)
    assert_message(error, path, "is a file, not a directory")
    assert "reinstall" not in str(error.value)


def test_load_fashion_mnist_from_synthetic_files(tmp_path, monkeypatch):
    arrays, checksums = write_synthetic_dataset(tmp_path, 12, 5, compress=False)
    spec = small_spec("fashion_mnist", tmp_path, checksums, 12, 5)
    monkeypatch.setitem(datasets.DATASETS, "fashion_mnist", spec)

    for data_dir in (None, tmp_path):
        loaded = datasets.load_dataset("fashion_mnist", data_dir=data_dir)
        assert loaded.name == "fashion_mnist"
        assert loaded.train_images.shape == (12, 6)
        assert loaded.train_images.dtype == np.float32
        assert loaded.test_labels.dtype == np.int64
        np.testing.assert_allclose(
            loaded.train_images, arrays["train_images"].reshape(12, 6) / 255.0
        )
        np.testing.assert_array_equal(loaded.test_labels, arrays["test_labels"])

    # The checksums recorded in the entry are still enforced.
    bad = dataclasses.replace(spec, sha256=dict(checksums, train_labels="f" * 64))
    monkeypatch.setitem(datasets.DATASETS, "fashion_mnist", bad)
    with pytest.raises(datasets.DataError, match="sha256"):
        datasets.load_dataset("fashion_mnist")


def test_load_dataset_count_mismatch_names_both_files(tmp_path, monkeypatch):
    write_synthetic_dataset(tmp_path, 5, 2)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4), compress=True)
    unchecked = dict.fromkeys(datasets.ROLES)
    spec = small_spec("mnist", tmp_path, unchecked, None, None)
    monkeypatch.setitem(datasets.DATASETS, "mnist", spec)

    with pytest.raises(datasets.DataError) as error:
        datasets.load_dataset("mnist")
    assert_message(
        error,
        tmp_path / "train-images-idx3-ubyte.gz",
        str(tmp_path / "train-labels-idx1-ubyte.gz"),
        "5 images",
        "4 labels",
    )


def test_load_dataset_label_out_of_range(tmp_path, monkeypatch):
    write_synthetic_dataset(tmp_path, 3, 2)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", [1, 10], compress=True)
    spec = small_spec("mnist", tmp_path, dict.fromkeys(datasets.ROLES), 3, 2)
    monkeypatch.setitem(datasets.DATASETS, "mnist", spec)

    with pytest.raises(datasets.DataError) as error:
        datasets.load_dataset("mnist")
    assert_message(error, tmp_path / "t10k-labels-idx1-ubyte.gz", "label 10", "[0, 10)")


@pytest.mark.skipif(
    not os.path.isdir(FASHION_DIR),
    reason=f"Fashion-MNIST is not installed in {FASHION_DIR} "
    "(apt-get install dataset-fashion-mnist).",
)
def test_fashion_mnist_loads_when_installed():
    data = datasets.load_dataset("fashion_mnist")
    assert data.name == "fashion_mnist"
    assert data.train_images.shape == (60000, 784)
    assert data.test_images.shape == (10000, 784)
    assert np.bincount(data.train_labels).tolist() == [6000] * 10
    assert np.bincount(data.test_labels).tolist() == [1000] * 10
    assert 0.0 <= data.train_images.min() and data.train_images.max() <= 1.0


# take_examples.


def indexed_dataset(labels):
    """A Dataset whose image i is the single pixel i, to trace what is kept."""
    labels = np.asarray(labels, dtype=np.int64)
    images = np.arange(len(labels), dtype=np.float32)[:, None]
    return datasets.Dataset("toy", images, labels, images[:3], labels[:3])


def test_take_examples_is_stratified_sorted_and_seeded():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    data = indexed_dataset(labels)

    subset = datasets.take_examples(data, 10, seed=1)
    index = subset.train_images[:, 0].astype(np.int64)
    assert np.bincount(subset.train_labels).tolist() == [5, 3, 2]
    np.testing.assert_array_equal(subset.train_labels, labels[index])
    assert np.all(np.diff(index) > 0)
    assert subset.test_images is data.test_images

    again = datasets.take_examples(data, 10, seed=1)
    np.testing.assert_array_equal(again.train_images, subset.train_images)
    other = datasets.take_examples(data, 10, seed=2)
    assert not np.array_equal(other.train_images, subset.train_images)


def test_take_examples_gives_rounding_leftovers_to_largest_shares():
    labels = np.repeat([0, 1, 2], [4, 3, 3])
    subset = datasets.take_examples(indexed_dataset(labels), 5, seed=0)
    assert np.bincount(subset.train_labels).tolist() == [2, 2, 1]


def test_take_examples_from_mnist(mnist):
    subset = datasets.take_examples(mnist, 100, seed=0)
    assert subset.train_images.shape == (100, 784)
    counts = np.bincount(subset.train_labels, minlength=10)
    shares = 100 * np.array(MNIST_TRAIN_COUNTS) / 60000
    assert counts.sum() == 100
    assert np.all(np.abs(counts - shares) < 1)


@pytest.mark.parametrize("n", [0, 6])
def test_take_examples_all(n):
    data = indexed_dataset([0, 1, 0, 1, 0, 1])
    assert datasets.take_examples(data, n, seed=0) is data


def test_take_examples_rejects_too_many():
    with pytest.raises(ValueError, match=r"between 0 \(all\) and 6.*toy, got 7"):
        datasets.take_examples(indexed_dataset([0, 1] * 3), 7, seed=0)


def test_take_examples_rejects_negative_and_non_int():
    data = indexed_dataset([0, 1] * 3)
    with pytest.raises(ValueError, match="got -1"):
        datasets.take_examples(data, -1, seed=0)
    with pytest.raises(TypeError, match="non-negative int, got 2.5"):
        datasets.take_examples(data, 2.5, seed=0)


# make_dataset.


def toy_arrays(num_examples=10):
    images = np.arange(2 * num_examples, dtype=np.float32).reshape(num_examples, 2)
    return images, np.arange(num_examples, dtype=np.int64)


def epoch_labels(dataset):
    return np.concatenate([labels.numpy() for _, labels in dataset]).tolist()


@pytest.mark.parametrize("drop_remainder, sizes", [(False, [4, 4, 2]), (True, [4, 4])])
def test_make_dataset_batch_shapes(drop_remainder, sizes):
    images, labels = toy_arrays()
    dataset = datasets.make_dataset(
        images, labels, 4, shuffle=False, seed=None, drop_remainder=drop_remainder
    )
    batches = list(dataset)
    assert [len(y) for _, y in batches] == sizes
    for x, y in batches:
        assert x.shape == (len(y), 2) and x.dtype == tf.float32
        assert y.dtype == tf.int64
    assert epoch_labels(dataset) == list(range(sum(sizes)))
    batch_dim = 4 if drop_remainder else None
    assert dataset.element_spec[0].shape.as_list() == [batch_dim, 2]


def test_make_dataset_shuffles_whole_set_and_keeps_pairs():
    images, labels = toy_arrays(50)
    orders = [
        epoch_labels(
            datasets.make_dataset(images, labels, 8, shuffle=True, seed=0, epoch=e)
        )
        for e in range(2)
    ]
    for order in orders:
        assert sorted(order) == list(range(50))
    assert orders[0] != orders[1]
    assert orders[0] != list(range(50))
    dataset = datasets.make_dataset(images, labels, 8, shuffle=True, seed=0)
    for x, y in dataset:
        np.testing.assert_array_equal(x.numpy(), images[y.numpy()])


def test_make_dataset_order_depends_on_seed_and_epoch_only():
    images, labels = toy_arrays(50)

    def order(seed, epoch):
        return epoch_labels(
            datasets.make_dataset(
                images, labels, 8, shuffle=True, seed=seed, epoch=epoch
            )
        )

    assert order(7, 3) == order(7, 3)
    assert order(7, 0) != order(8, 0)
    assert order(7, 0) != order(7, 1)
    expected = np.random.default_rng([7, 3]).permutation(50).tolist()
    assert order(7, 3) == expected


def test_make_dataset_start_step_skips_leading_batches():
    images, labels = toy_arrays(50)
    whole = list(
        datasets.make_dataset(images, labels, 8, shuffle=True, seed=1, epoch=2)
    )
    rest = list(
        datasets.make_dataset(
            images, labels, 8, shuffle=True, seed=1, epoch=2, start_step=3
        )
    )
    assert len(rest) == len(whole) - 3
    for (_, a), (_, b) in zip(whole[3:], rest, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# The order comes from NumPy's generator seeded with (seed, epoch), whatever
# TensorFlow's global seed is.
PINNED_ORDER = np.random.default_rng([5, 0]).permutation(12).tolist()


def test_make_dataset_order_is_independent_of_tensorflow_seeds():
    tf.random.set_seed(123)
    images, labels = toy_arrays(12)
    dataset = datasets.make_dataset(images, labels, 5, shuffle=True, seed=5)
    assert epoch_labels(dataset) == PINNED_ORDER
    tf.random.set_seed(None)


def test_make_dataset_on_mnist(mnist):
    dataset = datasets.make_dataset(
        mnist.test_images, mnist.test_labels, 128, shuffle=True, seed=0
    )
    images, labels = next(iter(dataset))
    assert images.shape == (128, 784) and images.dtype == tf.float32
    assert labels.shape == (128,) and labels.dtype == tf.int64


FLOATS = np.zeros((4, 2), np.float32)
INTS = np.zeros(4, np.int64)


@pytest.mark.parametrize(
    "changes, error, pattern",
    [
        (
            {"images": FLOATS.astype(np.uint8)},
            TypeError,
            "images must be a floating array, got dtype uint8",
        ),
        (
            {"images": FLOATS[:, :, None]},
            ValueError,
            r"images must have shape \[num_examples, input_dim\], got shape \[4, 2, 1",
        ),
        (
            {"labels": INTS.astype(np.float32)},
            TypeError,
            "labels must be an integer array, got dtype float32",
        ),
        (
            {"labels": INTS[:, None]},
            ValueError,
            r"labels must have shape \[num_examples\], got shape \[4, 1\]",
        ),
        ({"labels": INTS[:3]}, ValueError, "same length, got 4 images and 3 labels"),
        (
            {"images": FLOATS[:0], "labels": INTS[:0]},
            ValueError,
            "at least one example, got 0",
        ),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive int, got 0"),
        (
            {"batch_size": 2.0},
            TypeError,
            "batch_size must be a positive int, got 2.0",
        ),
        (
            {"shuffle": True},
            ValueError,
            "shuffle=True needs an int seed, got seed=None",
        ),
        ({"shuffle": True, "seed": "0"}, TypeError, "seed must be an int, got '0'"),
        ({"epoch": -1}, ValueError, "epoch must be a non-negative int, got -1"),
        ({"start_step": 1.5}, TypeError, "start_step must be a non-negative int"),
    ],
)
def test_make_dataset_rejects_bad_input(changes, error, pattern):
    kwargs = dict(images=FLOATS, labels=INTS, batch_size=2, shuffle=False, seed=None)
    with pytest.raises(error, match=pattern):
        datasets.make_dataset(**dict(kwargs, **changes))
