"""Image classification data: IDX files, the dataset registry and tf.data pipelines.

MNIST ships with the package as four gzip-compressed IDX files in
`rbf_tf/data/mnist/`; Fashion-MNIST, which has the same layout, is read from the
directory where the Debian package `dataset-fashion-mnist` installs it. Either
can also be read from any directory holding the four files, compressed or not.

Every file is checked as it is read: its IDX header, that the data length agrees
with the header, its shape, and the sha256 of its uncompressed bytes. A file that
fails a check raises `DataError`, whose message names the file and what was wrong.
Nothing is cached on disk.

Example:

    data = load_dataset("mnist")
    for epoch in range(10):
        train = make_dataset(
            data.train_images, data.train_labels, 128, shuffle=True, seed=0,
            epoch=epoch,
        )
        for images, labels in train:  # [128, 784] float32, [128] int64
        ...
"""

import dataclasses
import gzip
import hashlib
import os
import zlib
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from rbf_tf.base import check_positive_int

GZIP_MAGIC = b"\x1f\x8b"

# The third byte of an IDX magic number is the element type. Only unsigned bytes
# are read; the others are named so that a refusal can say what it found.
IDX_UBYTE = 0x08
IDX_TYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}

# The four files of a dataset, in the order they are read.
ROLES = ("train_images", "train_labels", "test_images", "test_labels")

PACKAGE_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


class DataError(ValueError):
    """A data file is unreadable, malformed, or not the expected file."""


class MissingDataError(DataError, FileNotFoundError):
    """A data file or directory does not exist.

    It is both a `DataError` (so a `ValueError`) and a `FileNotFoundError`, so
    either `except` clause catches it.
    """


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a dataset's four IDX files are called and must contain.

    Attributes:
      name: the registry key, e.g. "mnist".
      files: role (one of `ROLES`) -> file name without ".gz", e.g.
        "train-images-idx3-ubyte". The gzip name is tried first, then this one.
      sha256: role -> hex sha256 of the uncompressed file, or None to skip the
        check for that file.
      num_train: number of training examples, or None to accept any.
      num_test: number of test examples, or None to accept any.
      image_shape: (height, width) of one image.
      num_classes: labels must lie in [0, num_classes).
      default_dir: where the files are read from when no `data_dir` is given.
      missing_hint: a sentence added to the error when the files are missing.
    """

    name: str
    files: Dict[str, str]
    sha256: Dict[str, Optional[str]]
    num_train: Optional[int]
    num_test: Optional[int]
    image_shape: Tuple[int, int]
    num_classes: int
    default_dir: str
    missing_hint: str

    def expected_shape(self, role: str) -> Optional[Tuple[int, ...]]:
        """Returns the array shape the file of `role` must hold, or None."""
        count = self.num_train if role.startswith("train") else self.num_test
        if count is None:
            return None
        if role.endswith("images"):
            return (count, *self.image_shape)
        return (count,)


_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

DATASETS = {
    "mnist": DatasetSpec(
        name="mnist",
        files=dict(_IDX_FILES),
        sha256={
            "train_images": (
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
            ),
            "train_labels": (
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
            ),
            "test_images": (
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
            ),
            "test_labels": (
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
            ),
        },
        num_train=60000,
        num_test=10000,
        image_shape=(28, 28),
        num_classes=10,
        default_dir=os.path.join(PACKAGE_DATA_DIR, "mnist"),
        missing_hint=(
            "The copy shipped with rbf_tf lives in "
            f"{os.path.join(PACKAGE_DATA_DIR, 'mnist')}; reinstall the package if "
            "it is gone, or pass data_dir pointing to a directory that holds them."
        ),
    ),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        files=dict(_IDX_FILES),
        sha256={
            "train_images": (
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
            ),
            "train_labels": (
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
            ),
            "test_images": (
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
            ),
            "test_labels": (
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
            ),
        },
        num_train=60000,
        num_test=10000,
        image_shape=(28, 28),
        num_classes=10,
        default_dir="/usr/share/datasets/fashion-mnist",
        missing_hint=(
            "Install them with `apt-get install dataset-fashion-mnist` (they go to "
            "/usr/share/datasets/fashion-mnist) or pass data_dir pointing to a "
            "directory that holds them."
        ),
    ),
}


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A dataset in memory, ready for `make_dataset`.

    Attributes:
      name: the registry key it was loaded as, e.g. "mnist".
      train_images: [num_train, height * width] float32 in [0, 1].
      train_labels: [num_train] int64 in [0, num_classes).
      test_images: [num_test, height * width] float32 in [0, 1].
      test_labels: [num_test] int64 in [0, num_classes).
      num_classes: number of classes, 10 for both registered datasets.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int = 10

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train_images={self.train_images.shape}, "
            f"test_images={self.test_images.shape}, num_classes={self.num_classes})"
        )


def _idx_bytes(path: str) -> bytes:
    """Returns the uncompressed content of the IDX file at `path`."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise MissingDataError(
            f"IDX file {path} does not exist; expected a gzip-compressed or raw IDX "
            "file there."
        ) from None
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e}.") from None

    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"IDX file {path} starts like gzip but is not a valid gzip stream "
            f"({e}); expected an intact .gz file, so replace or re-download it."
        ) from None


def read_idx(
    path,
    expected_sha256: Optional[str] = None,
    expected_shape: Optional[Sequence[int]] = None,
) -> np.ndarray:
    """Reads an IDX file of unsigned bytes, gzip-compressed or raw.

    An IDX file is a 4-byte magic number 0x0000TTDD (TT the element type, DD the
    number of dimensions), then DD big-endian uint32 dimensions, then the data.
    MNIST labels have magic 0x00000801 and images 0x00000803. Only type 0x08
    (unsigned byte) is accepted. A file is taken as gzip when it begins with the
    bytes 1f 8b, whatever its name.

    Args:
      path: str or path-like, the file to read.
      expected_sha256: hex sha256 of the uncompressed bytes, or None to skip the
        check. Checked after the header and length, so a damaged file is
        reported by what is wrong with it rather than as a checksum mismatch.
      expected_shape: the shape the header must declare, or None to accept any.

    Returns:
      A writable uint8 array with the shape declared in the header.

    Raises:
      MissingDataError: if the file does not exist (a `DataError` that is also
        a `FileNotFoundError`).
      DataError: if the file cannot be read, is a corrupt gzip stream, has a bad
        magic number or an element type other than unsigned byte, is shorter or
        longer than its header says, has a shape other than `expected_shape` or
        a sha256 other than `expected_sha256`. The message names the file.
    """
    path = os.fspath(path)
    data = _idx_bytes(path)

    if len(data) < 4:
        raise DataError(
            f"IDX file {path} is truncated: expected at least a 4-byte magic "
            f"number, got {len(data)} bytes."
        )
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"IDX file {path} has magic number 0x{data[:4].hex()}, expected "
            "0x0000TTDD (0x00000801 for labels, 0x00000803 for images); it is not "
            "an IDX file."
        )
    type_code, ndim = data[2], data[3]
    if type_code != IDX_UBYTE:
        type_name = IDX_TYPE_NAMES.get(type_code, "unknown")
        raise DataError(
            f"IDX file {path} holds element type 0x{type_code:02x} ({type_name}), "
            "expected 0x08 (unsigned byte)."
        )
    if ndim == 0:
        raise DataError(f"IDX file {path} declares 0 dimensions, expected at least 1.")

    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"IDX file {path} is truncated: expected a {header_size}-byte header "
            f"for {ndim} dimensions, got {len(data)} bytes."
        )
    shape = tuple(
        int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4)
    )
    data_size = int(np.prod(shape, dtype=np.int64))
    got_size = len(data) - header_size
    if got_size < data_size:
        raise DataError(
            f"IDX file {path} is truncated: its header declares shape {shape}, "
            f"{data_size} data bytes, got {got_size}."
        )
    if got_size > data_size:
        raise DataError(
            f"IDX file {path} has {got_size - data_size} trailing bytes: its header "
            f"declares shape {shape}, {data_size} data bytes, got {got_size}."
        )

    if expected_shape is not None and shape != tuple(expected_shape):
        raise DataError(
            f"IDX file {path} has shape {shape}, expected {tuple(expected_shape)}."
        )
    if expected_sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected_sha256.lower():
            raise DataError(
                f"IDX file {path} has sha256 {digest} (uncompressed), expected "
                f"{expected_sha256.lower()}; it is damaged or a different file."
            )

    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def _find_idx_file(spec: DatasetSpec, data_dir: str, role: str) -> str:
    """Returns the path of the file of `role` in `data_dir`, gzip name first."""
    base = spec.files[role]
    for candidate in (base + ".gz", base):
        path = os.path.join(data_dir, candidate)
        if os.path.isfile(path):
            return path

    expected = ", ".join(spec.files[r] + "[.gz]" for r in ROLES)
    if os.path.isfile(data_dir):
        problem = f"{data_dir} is a file, not a directory"
    elif not os.path.isdir(data_dir):
        problem = f"directory {data_dir} does not exist"
    else:
        problem = f"{base}.gz or {base} not found in {data_dir}"
    # The hint names the default location; it helps only when that was used.
    hint = f" {spec.missing_hint}" if data_dir == spec.default_dir else ""
    raise MissingDataError(
        f"cannot load {spec.name}: {problem}; expected a directory holding the "
        f"four IDX files {expected}, gzip-compressed or not.{hint}"
    )


def _read_split(
    spec: DatasetSpec, paths: Dict[str, str], split: str
) -> Tuple[np.ndarray, np.ndarray]:
    """Reads, checks and converts the images and labels of "train" or "test"."""
    images_path, labels_path = paths[f"{split}_images"], paths[f"{split}_labels"]
    images = read_idx(
        images_path,
        expected_sha256=spec.sha256.get(f"{split}_images"),
        expected_shape=spec.expected_shape(f"{split}_images"),
    )
    labels = read_idx(
        labels_path,
        expected_sha256=spec.sha256.get(f"{split}_labels"),
        expected_shape=spec.expected_shape(f"{split}_labels"),
    )

    if images.shape[1:] != tuple(spec.image_shape):
        raise DataError(
            f"IDX file {images_path} holds images of shape {images.shape[1:]}, "
            f"expected {tuple(spec.image_shape)}."
        )
    if labels.ndim != 1:
        raise DataError(
            f"IDX file {labels_path} has shape {labels.shape}, expected one "
            "dimension of labels."
        )
    if len(images) != len(labels):
        raise DataError(
            f"{split} images and labels disagree in count: {images_path} holds "
            f"{len(images)} images, {labels_path} holds {len(labels)} labels."
        )
    if labels.size and labels.max() >= spec.num_classes:
        raise DataError(
            f"IDX file {labels_path} holds label {labels.max()}, expected labels "
            f"in [0, {spec.num_classes})."
        )

    images = images.reshape(len(images), -1).astype(np.float32)  # [N, h * w]
    images /= np.float32(255.0)
    return images, labels.astype(np.int64)


def load_dataset(name: str = "mnist", data_dir=None) -> Dataset:
    """Loads a registered dataset into memory, verifying every file.

    Each of the four files is looked for as `<name>.gz` and then as `<name>`
    (e.g. "train-images-idx3-ubyte.gz", then "train-images-idx3-ubyte"), so a
    directory may hold them compressed, uncompressed or mixed. The sha256 of the
    uncompressed bytes is checked wherever they are read from. Images are
    flattened and scaled by 1/255.

    Args:
      name: a key of `DATASETS`: "mnist" or "fashion_mnist".
      data_dir: str or path-like directory to read the files from. Default: the
        dataset's `default_dir`, i.e. the copy shipped in `rbf_tf/data/mnist/`
        for "mnist" and /usr/share/datasets/fashion-mnist (installed by the
        Debian package `dataset-fashion-mnist`) for "fashion_mnist".

    Returns:
      A `Dataset` with train_images [60000, 784] float32 in [0, 1],
      train_labels [60000] int64, test_images [10000, 784] float32 and
      test_labels [10000] int64.

    Raises:
      ValueError: if `name` is not registered.
      MissingDataError: if the directory or one of the files is missing; the
        message lists the files expected and how to get them.
      DataError: if a file fails a check (see `read_idx`), or images and labels
        disagree in count or a label is out of range.
    """
    if name not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}."
        )
    spec = DATASETS[name]
    data_dir = spec.default_dir if data_dir is None else os.fspath(data_dir)

    # Find all four files before reading any, so a missing one is reported
    # before a long read.
    paths = {role: _find_idx_file(spec, data_dir, role) for role in ROLES}
    train_images, train_labels = _read_split(spec, paths, "train")
    test_images, test_labels = _read_split(spec, paths, "test")
    return Dataset(
        name=name,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        num_classes=spec.num_classes,
    )


def take_examples(dataset: Dataset, n: int, seed: int) -> Dataset:
    """Keeps a random, class-stratified subset of `n` training examples.

    Each class keeps its share of `n` in proportion to its share of the training
    set; the examples left over by rounding down go to the classes with the
    largest fractional shares (ties to the lower label). Within a class the
    examples are drawn without replacement by a generator seeded with `seed`,
    and the kept examples stay in their original order. The test set is kept
    whole.

    Args:
      dataset: the `Dataset` to cut down.
      n: number of training examples to keep; 0 keeps all of them.
      seed: int, seeds the draw; the same seed gives the same subset.

    Returns:
      A `Dataset` with `n` training examples (all of them when `n` is 0 or the
      size of the training set), `dataset` itself in that case.

    Raises:
      TypeError: if `n` is not an int.
      ValueError: if `n` is negative or larger than the training set.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be a non-negative int, got {n!r}.")
    num_train = len(dataset.train_labels)
    if n < 0 or n > num_train:
        raise ValueError(
            f"n must be between 0 (all) and {num_train}, the training examples "
            f"of {dataset.name}, got {n}."
        )
    if n == 0 or n == num_train:
        return dataset

    classes, counts = np.unique(dataset.train_labels, return_counts=True)
    shares = n * counts / num_train
    keep = np.floor(shares).astype(np.int64)
    leftover = n - int(keep.sum())
    by_remainder = np.argsort(-(shares - keep), kind="stable")
    keep[by_remainder[:leftover]] += 1

    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(dataset.train_labels == c), size=k, replace=False)
        for c, k in zip(classes, keep, strict=True)
    ]
    index = np.sort(np.concatenate(chosen))
    return dataclasses.replace(
        dataset,
        train_images=dataset.train_images[index],
        train_labels=dataset.train_labels[index],
    )


def make_dataset(
    images,
    labels,
    batch_size: int,
    *,
    shuffle: bool,
    seed: Optional[int],
    epoch: int = 0,
    start_step: int = 0,
    num_epochs: int = 1,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Builds a tf.data pipeline of (images, labels) batches, epoch after epoch.

    With `shuffle`, the epoch visits the whole set in an order (a permutation
    of all indices, not a bounded buffer) fixed by `seed` and `epoch` alone:
    the same in a fresh process, and the same whether or not earlier epochs
    ran. A training run that resumes in the middle of an epoch therefore sees
    the batches an uninterrupted run would, after skipping `start_step`.

    With `num_epochs` > 1 the pipeline yields the batches of epochs `epoch`,
    `epoch + 1`, ... in turn (a batch never spans two epochs), so one iterator
    serves a whole run: creating and deleting an iterator every epoch costs a
    stall of up to seconds in tf.data.

    Args:
      images: [num_examples, input_dim] floating array or tensor.
      labels: [num_examples] integer array or tensor.
      batch_size: positive int; the last batch may be smaller unless
        `drop_remainder`.
      shuffle: whether to reshuffle on every pass.
      seed: int seed of the shuffle; required when `shuffle` is True, ignored
        otherwise.
      epoch: non-negative int, the epoch whose order to use.
      start_step: non-negative int, the number of leading batches of the
        first epoch to skip.
      num_epochs: positive int, the number of consecutive epochs.
      drop_remainder: whether to drop a last batch smaller than `batch_size`.

    Returns:
      A `tf.data.Dataset` of ([batch, input_dim] images, [batch] labels) with
      the dtypes of the inputs, prefetched.

    Raises:
      TypeError: if images are not floating, labels not integer, or
        `batch_size` or `seed` not an int.
      ValueError: if a rank is wrong, the set is empty, the counts differ,
        `batch_size` is not positive, or `shuffle` is True without a seed.
    """
    images = tf.convert_to_tensor(images)
    labels = tf.convert_to_tensor(labels)
    if not images.dtype.is_floating:
        raise TypeError(
            f"images must be a floating array, got dtype {images.dtype.name}; "
            "scale them to floats first (load_dataset does)."
        )
    if images.shape.rank != 2:
        raise ValueError(
            "images must have shape [num_examples, input_dim], got shape "
            f"{images.shape.as_list()}."
        )
    if not labels.dtype.is_integer:
        raise TypeError(
            f"labels must be an integer array, got dtype {labels.dtype.name}."
        )
    if labels.shape.rank != 1:
        raise ValueError(
            "labels must have shape [num_examples], got shape "
            f"{labels.shape.as_list()}."
        )
    num_examples = images.shape[0]
    if num_examples == 0:
        raise ValueError("images must hold at least one example, got 0.")
    if labels.shape[0] != num_examples:
        raise ValueError(
            f"images and labels must have the same length, got {num_examples} "
            f"images and {labels.shape[0]} labels."
        )
    batch_size = check_positive_int("batch_size", batch_size)
    if shuffle:
        if seed is None:
            raise ValueError("shuffle=True needs an int seed, got seed=None.")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {seed!r}.")

    for name, value in (("epoch", epoch), ("start_step", start_step)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be a non-negative int, got {value!r}.")
        if value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value}.")

    num_epochs = check_positive_int("num_epochs", num_epochs)

    # Order and batch indices, then gather whole batches: cheaper than pushing
    # every example through a shuffle buffer.
    index = None
    for e in range(int(epoch), int(epoch) + num_epochs):
        if shuffle:
            order = np.random.default_rng([int(seed), e]).permutation(num_examples)
        else:
            order = np.arange(num_examples)
        skip = start_step * batch_size if e == epoch else 0
        batches = tf.data.Dataset.from_tensor_slices(order[skip:]).batch(
            batch_size, drop_remainder=drop_remainder)
        index = batches if index is None else index.concatenate(batches)
    # A gather is one copy of a batch: a single background thread keeps ahead
    # of training, and more threads would only compete with it for the cores
    # (measured: benchmarks/step_time.py --end_to_end).
    batches = index.map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))
    return batches.prefetch(2)  # [B, n], [B]
