"""Tests of `rbf_tf.Classifier`: composition, parameter counts and checkpoints.

The last test is about the package as a whole: it keeps Keras out of rbf_tf.
"""

import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf

import rbf_tf

N, M, K = 784, 100, 10


def gaussian_classifier(dtype=tf.float32, seed=0):
    return rbf_tf.Classifier(
        rbf_tf.GaussianRBF(N, M, dtype=dtype, seed=seed), num_classes=K, seed=seed
    )


def refs(variables):
    return {v.ref() for v in variables}


def test_gaussian_parameter_counts():
    counts = gaussian_classifier().param_counts()

    assert counts == {
        "hidden": N * M + 2 * M,
        "readout": M * K + K,
        "total": N * M + 2 * M + M * K + K,
    }


def test_dense_parameter_counts():
    classifier = rbf_tf.Classifier(rbf_tf.Dense(N, M), num_classes=K)

    counts = classifier.param_counts()

    assert counts == {
        "hidden": N * M + M,
        "readout": M * K + K,
        "total": N * M + M + M * K + K,
    }


def test_total_equals_count_of_all_trainable_variables():
    classifier = gaussian_classifier()

    assert classifier.param_counts()["total"] == rbf_tf.count_parameters(classifier)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=lambda d: d.name)
def test_logits_are_readout_of_hidden(dtype):
    classifier = gaussian_classifier(dtype)
    classifier.readout.bias.assign(np.linspace(-1.0, 1.0, K))
    classifier.hidden.w.assign(np.linspace(-2.0, 2.0, M))  # outputs of both signs
    x = np.random.default_rng(0).uniform(0.0, 1.0, (5, N)).astype(dtype.as_numpy_dtype)

    logits = classifier(x)

    assert logits.shape == (5, K)
    assert logits.dtype == dtype
    hidden = classifier.hidden(x).numpy().astype(np.float64)
    expected = hidden @ classifier.readout.kernel.numpy() + classifier.readout.bias
    rtol = 1e-5 if dtype == tf.float32 else 1e-12
    np.testing.assert_allclose(logits.numpy(), expected, rtol=rtol, atol=1e-6)


def test_classifier_takes_its_dtype_and_width_from_the_hidden_layer():
    classifier = rbf_tf.Classifier(rbf_tf.Dense(12, 5, dtype=tf.float64), 3)

    assert classifier.input_dim == 12
    assert classifier.dtype == tf.float64
    assert classifier.readout.kernel.shape == (5, 3)
    assert classifier.readout.kernel.dtype == tf.float64
    assert classifier.num_classes == 3


def test_logits_trace_with_a_free_batch_dimension():
    classifier = gaussian_classifier()

    concrete = classifier.forward.get_concrete_function()

    assert concrete.structured_outputs.shape.as_list() == [None, K]


def test_trainable_variables_hold_hidden_and_readout_variables():
    classifier = gaussian_classifier()

    expected = refs(classifier.hidden.trainable_variables) | refs(
        classifier.readout.trainable_variables
    )

    assert refs(classifier.trainable_variables) == expected
    assert len(classifier.trainable_variables) == 5


def test_gradients_reach_every_variable():
    classifier = gaussian_classifier()
    x = np.random.default_rng(0).uniform(0.0, 1.0, (4, N)).astype(np.float32)

    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(classifier(x) ** 2)
    gradients = tape.gradient(loss, classifier.trainable_variables)

    for gradient in gradients:
        assert gradient is not None
        assert np.any(gradient.numpy() != 0.0)


def test_checkpoint_round_trip_restores_values(tmp_path):
    classifier = gaussian_classifier(seed=0)
    saved = [v.numpy() for v in classifier.trainable_variables]
    path = tf.train.Checkpoint(model=classifier).save(str(tmp_path / "ckpt"))
    for variable in classifier.trainable_variables:
        variable.assign(tf.zeros_like(variable))

    tf.train.Checkpoint(model=classifier).restore(path).assert_consumed()

    for variable, value in zip(classifier.trainable_variables, saved, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_checkpoint_restores_into_a_fresh_classifier(tmp_path):
    original = gaussian_classifier(seed=0)
    original.readout.bias.assign(np.arange(K, dtype=np.float32))
    path = tf.train.Checkpoint(model=original).save(str(tmp_path / "ckpt"))
    fresh = gaussian_classifier(seed=1)
    x = np.random.default_rng(0).uniform(0.0, 1.0, (3, N)).astype(np.float32)
    assert not np.allclose(fresh(x).numpy(), original(x).numpy())

    tf.train.Checkpoint(model=fresh).restore(path).assert_consumed()

    np.testing.assert_array_equal(fresh(x).numpy(), original(x).numpy())


def test_hidden_layer_check_numerics_applies_through_the_classifier():
    classifier = rbf_tf.Classifier(rbf_tf.GaussianRBF(3, 4, check_numerics=True), 2)

    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        classifier(np.array([[0.0, np.inf, 1.0]], np.float32))


def test_input_checks_apply_to_the_classifier():
    classifier = rbf_tf.Classifier(rbf_tf.GaussianRBF(3, 4), 2)

    with pytest.raises(ValueError, match=r"\[batch_size, 3\], got shape \(2, 5\)"):
        classifier(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="float32, got float64"):
        classifier(np.zeros((2, 3)))


def test_hidden_that_is_not_an_rbf_tf_layer_is_a_type_error():
    with pytest.raises(TypeError, match="hidden must be an rbf_tf layer .*got Module"):
        rbf_tf.Classifier(tf.Module(), 10)


@pytest.mark.parametrize(
    "num_classes, error", [(0, ValueError), (-2, ValueError), (2.0, TypeError)]
)
def test_bad_num_classes(num_classes, error):
    with pytest.raises(error, match="num_classes must be a positive int, got"):
        rbf_tf.Classifier(rbf_tf.Dense(3, 4), num_classes)


# The package as a whole.

KERAS = re.compile(
    r"tf\.keras|tensorflow\.keras|tf_keras|^\s*import\s+keras\b|^\s*from\s+keras\b"
    r"|^\s*from\s+tensorflow\s+import\s+keras\b",
    re.MULTILINE,
)


def test_keras_pattern_finds_each_spelling():
    for line in (
        "x = tf.keras.layers.Dense(3)",
        "import keras",
        "from keras import layers",
        "import tf_keras as keras",
        "from tensorflow import keras",
    ):
        assert KERAS.search(line), line
    assert not KERAS.search("# the baseline is a plain dense layer")


def test_library_sources_do_not_use_keras():
    package = pathlib.Path(rbf_tf.__file__).parent
    sources = sorted(package.rglob("*.py"))
    assert len(sources) >= 7

    offenders = []
    for path in sources:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if KERAS.search(line):
                offenders.append(f"{path.relative_to(package)}:{number}: {line}")

    assert offenders == []
