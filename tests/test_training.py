"""Tests of the shared training loop on a slice of the shipped MNIST set."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from rbf_tf import Adam, Classifier, Dense, GaussianRBF, datasets, training
from rbf_tf.training import NetworkConfig


@pytest.fixture(scope="module")
def mnist_slice():
    data = datasets.load_dataset("mnist")
    data = datasets.take_examples(data, 3000, seed=0)
    return (data.train_images, data.train_labels,
            data.test_images[:2000], data.test_labels[:2000])


def small_config(layer, **changes):
    fields = dict(layer=layer, units=64, epochs=2, batch_size=32, seed=0)
    if layer == "gaussian":
        fields.update(width_scale=0.4, learning_rate=2e-2, center_lr_scale=0.15,
                      width_lr_scale=0.15, schedule="cosine")
    fields.update(changes)
    return NetworkConfig(**fields)


@pytest.mark.parametrize("layer", ["gaussian", "dense"])
def test_loss_falls_and_accuracy_beats_chance(mnist_slice, layer):
    record = training.train_network(small_config(layer), *mnist_slice)
    losses = [r["train_loss"] for r in record["epochs"]]
    assert len(losses) == 2
    assert losses[1] < losses[0] < np.log(10)
    assert record["final_test_accuracy"] > 0.6  # chance is 0.1
    assert record["best_test_accuracy"] == max(
        r["test_accuracy"] for r in record["epochs"])


def test_same_config_gives_same_numbers(mnist_slice):
    tf.config.experimental.enable_op_determinism()
    config = small_config("gaussian", epochs=1)
    first = training.train_network(config, *mnist_slice)
    second = training.train_network(config, *mnist_slice)
    for a, b in zip(first["epochs"], second["epochs"], strict=True):
        assert a["train_loss"] == b["train_loss"]
        assert a["test_accuracy"] == b["test_accuracy"]
    other = training.train_network(small_config("gaussian", epochs=1, seed=1),
                                   *mnist_slice)
    assert other["epochs"][0]["train_loss"] != first["epochs"][0]["train_loss"]


def test_record_has_the_documented_fields(mnist_slice):
    record = training.train_network(small_config("dense", epochs=1), *mnist_slice)
    assert record["params"] == {"hidden": 784 * 64 + 64, "readout": 64 * 10 + 10,
                                "total": 784 * 64 + 64 + 64 * 10 + 10}
    assert set(record["epochs"][0]) >= {"epoch", "train_loss", "test_loss",
                                        "test_accuracy", "seconds"}
    json.dumps(record)  # Serialisable as it is.


def test_train_step_matches_a_hand_written_step():
    rng = np.random.default_rng(0)
    images = rng.random((16, 5)).astype(np.float32)
    labels = rng.integers(0, 3, 16)
    models = [Classifier(GaussianRBF(5, 4, sigma=1.0, seed=1), 3, seed=2)
              for _ in range(2)]
    step = training.make_train_step(models[0], Adam(0.1))
    step(images, labels)

    optimizer = Adam(0.1)
    with tf.GradientTape() as tape:
        logits = models[1](images)
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    variables = models[1].trainable_variables
    optimizer.apply(tape.gradient(loss, variables), variables)
    for a, b in zip(models[0].trainable_variables, variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_variable_groups_learn_at_their_own_rates():
    rng = np.random.default_rng(0)
    images = rng.random((8, 3)).astype(np.float32)
    labels = rng.integers(0, 2, 8)
    model = Classifier(GaussianRBF(3, 4, sigma=1.0), 2)
    before = [v.numpy().copy() for v in model.trainable_variables]
    hidden = model.hidden
    groups = [(Adam(1e-9), [hidden.mu, hidden.sigma, hidden.w]),
              (Adam(0.1), list(model.readout.trainable_variables))]
    training.make_train_step(model, groups)(images, labels)
    moved = [np.abs(v.numpy() - b).max() for v, b in
             zip(model.trainable_variables, before, strict=True)]
    names = [v.name for v in model.trainable_variables]
    for name, change in zip(names, moved, strict=True):
        if "readout" in name:
            assert change > 1e-2, name
        else:
            assert change < 1e-7, name


def test_groups_must_cover_every_variable():
    model = Classifier(Dense(3, 4), 2)
    with pytest.raises(ValueError, match="variables without an optimiser"):
        training.make_train_step(model, [(Adam(0.1), [model.hidden.kernel])])


def test_cosine_schedule_runs_from_one_towards_zero():
    config = small_config("gaussian", epochs=4)
    factors = [training.learning_rate_factor(config, e) for e in range(4)]
    assert factors[0] == 1.0
    assert all(a > b for a, b in zip(factors, factors[1:], strict=False))
    assert factors[-1] > 0
    constant = small_config("dense", epochs=4, schedule="constant")
    assert [training.learning_rate_factor(constant, e) for e in range(4)] == [1.0] * 4


def test_gaussian_network_starts_from_the_data(mnist_slice):
    images, labels = mnist_slice[:2]
    config = small_config("gaussian", width_scale=0.5)
    model = training.build_network(config, images, labels)
    mu = model.hidden.mu.numpy()
    # Every center is one of the training images.
    distances = ((images[:, :, None] - mu[None, :, :8]) ** 2).sum(axis=1).min(axis=0)
    np.testing.assert_allclose(distances, 0.0, atol=1e-6)
    width = training.initializers.in_class_width(images, labels, 500, 0)
    np.testing.assert_allclose(model.hidden.sigma.numpy(), 0.5 * width, rtol=1e-6)
    np.testing.assert_array_equal(model.hidden.w.numpy(), 1.0)


@pytest.mark.parametrize("field, value, message", [
    ("layer", "conv", "layer must be one of"),
    ("schedule", "step", "schedule must be one of"),
    ("units", 0, "units must be positive, got 0"),
    ("learning_rate", 0.0, "learning_rate must be positive and finite, got 0.0"),
    ("width_scale", float("inf"), "width_scale must be positive and finite"),
])
def test_config_refuses_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        NetworkConfig(**{field: value})


def test_summaries_hold_scalars_and_center_images(mnist_slice, tmp_path):
    training.train_network(small_config("gaussian", epochs=1), *mnist_slice,
                           output_dir=str(tmp_path))
    tags = {}
    summary_dir = tmp_path / "summaries"
    for name in os.listdir(summary_dir):
        for record in tf.data.TFRecordDataset(str(summary_dir / name)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                tags[value.tag] = value.metadata.plugin_data.plugin_name
    assert tags == {"train_loss": "scalars", "test_loss": "scalars",
                    "test_accuracy": "scalars", "centers": "images"}


def test_center_images_are_scaled_squares():
    mu = np.random.default_rng(0).normal(size=(784, 70))
    images = training.center_images(mu)
    assert images.shape == (64, 28, 28, 1)
    assert images.min() == 0.0 and images.max() == 1.0
    assert training.center_images(np.zeros((10, 5))) is None


def test_a_diverging_run_stops_with_a_clear_error(mnist_slice):
    config = small_config("dense", epochs=1, learning_rate=1e30)
    with pytest.raises(training.DivergedError, match="diverged.*lower the learning"):
        training.train_network(config, *mnist_slice)


def test_class_count_covers_the_test_labels(mnist_slice):
    images, labels, test_images, test_labels = mnist_slice
    keep = labels < 5  # A training set that lacks half the classes.
    record = training.train_network(
        small_config("dense", epochs=1), images[keep], labels[keep],
        test_images, test_labels)
    assert record["params"]["readout"] == 64 * 10 + 10


def test_a_corrupt_checkpoint_is_reported_with_the_remedy(mnist_slice, tmp_path):
    config = small_config("dense", epochs=1)
    training.train_network(config, *mnist_slice, output_dir=str(tmp_path))
    for path in (tmp_path / "checkpoints").glob("ckpt-*.data-*"):
        path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(training.CheckpointError, match="cannot restore.*--restart"):
        training.train_network(config, *mnist_slice, output_dir=str(tmp_path))


def test_checkpoints_without_their_index_file_are_not_silently_ignored(
        mnist_slice, tmp_path):
    config = small_config("dense", epochs=1)
    training.train_network(config, *mnist_slice, output_dir=str(tmp_path))
    (tmp_path / "checkpoints" / "checkpoint").write_text("garbage {")
    with pytest.raises(training.CheckpointError, match="no readable 'checkpoint'"):
        training.train_network(config, *mnist_slice, output_dir=str(tmp_path))
