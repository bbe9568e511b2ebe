"""SavedModel export of rbf_tf layers, reloaded in a process without rbf_tf.

The layers are saved with a bare `tf.saved_model.save(layer, path)`. One fresh
Python process, in which any import of rbf_tf raises, reloads every export and
calls it three ways (`loaded.forward`, the `serving_default` signature and
`loaded(x)` itself) on batches of 1 and 1000, writing its outputs to .npy files
that the tests compare with the layers in memory. A call that fails there is
recorded with its error, so only the tests that need it fail.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import rbf_tf

BATCH_SIZES = (1, 1000)
CALLS = ("forward", "serving_default", "direct")
NAMES = ("classifier", "dense", "gaussian_float32", "gaussian_float64")

# Runs in the fresh process: argv[1] is the folder holding the exports and inputs.
RELOAD_SCRIPT = r"""
import json
import os
import sys


class RefuseRbfTf:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "rbf_tf":
            raise ImportError("reloading must not need rbf_tf")
        return None


sys.meta_path.insert(0, RefuseRbfTf())

import numpy as np
import tensorflow as tf

folder = sys.argv[1]
with open(os.path.join(folder, "names.json")) as f:
    names = json.load(f)


# Runs step(); on an exception records it under `key` and returns None.
def attempt(errors, key, step):
    try:
        return step()
    except Exception as error:
        errors[key] = f"{type(error).__name__}: {error}"
        return None


report = {}
for name in names:
    loaded = tf.saved_model.load(os.path.join(folder, name))
    signature = loaded.signatures.get("serving_default")
    errors = {}
    report[name] = {"callable": callable(loaded), "errors": errors}
    if signature is None:
        errors["signature"] = f"no serving_default in {sorted(loaded.signatures)}"
    else:
        (input_spec,) = signature.structured_input_signature[1].values()
        report[name]["signature_input_shape"] = input_spec.shape.as_list()
        report[name]["signature_outputs"] = sorted(signature.structured_outputs)
    calls = {
        "forward": lambda x: loaded.forward(x),
        "serving_default": lambda x: signature(x=tf.constant(x))["output_0"],
        "direct": lambda x: loaded(x),
    }
    for batch_size in (1, 1000):
        x = np.load(os.path.join(folder, f"{name}_x{batch_size}.npy"))
        for call, function in calls.items():
            y = attempt(errors, f"{call}_{batch_size}", lambda: function(x).numpy())
            if y is not None:
                np.save(os.path.join(folder, f"{name}_{call}_{batch_size}.npy"), y)

        def gradient():
            t = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(t)
                loss = tf.reduce_sum(loaded.forward(t) ** 2)
            return tape.gradient(loss, t).numpy()

        g = attempt(errors, f"gradient_{batch_size}", gradient)
        if g is not None:
            np.save(os.path.join(folder, f"{name}_gradient_{batch_size}.npy"), g)
report["rbf_tf_imported"] = "rbf_tf" in sys.modules
with open(os.path.join(folder, "report.json"), "w") as f:
    json.dump(report, f)
"""


def make_layers():
    """The exported layers by name, each with non-default variable values."""
    rng = np.random.default_rng(0)
    layers = {}
    for dtype in (tf.float32, tf.float64):
        layers[f"gaussian_{dtype.name}"] = rbf_tf.GaussianRBF(
            6,
            4,
            mu=rng.uniform(0.0, 1.0, (6, 4)),
            sigma=rng.uniform(0.5, 1.5, 4),
            w=rng.uniform(0.5, 2.0, 4),
            dtype=dtype,
        )
    layers["dense"] = rbf_tf.Dense(6, 5, activation="tanh", seed=3)
    layers["classifier"] = rbf_tf.Classifier(rbf_tf.GaussianRBF(6, 4), num_classes=3)
    assert sorted(layers) == list(NAMES)
    return layers


def inputs(layer, batch_size):
    rng = np.random.default_rng(batch_size)
    x = rng.uniform(0.0, 1.0, (batch_size, layer.input_dim))
    return x.astype(layer.dtype.as_numpy_dtype)


@pytest.fixture(scope="module")
def reloaded(tmp_path_factory):
    """Saves the layers and reloads them in a fresh process.

    Returns:
      (layers by name, folder of the .npy files, the fresh process's report).
    """
    folder = tmp_path_factory.mktemp("saved_models")
    layers = make_layers()
    for name, layer in layers.items():
        tf.saved_model.save(layer, str(folder / name))
        for batch_size in BATCH_SIZES:
            np.save(folder / f"{name}_x{batch_size}.npy", inputs(layer, batch_size))
    (folder / "names.json").write_text(json.dumps(NAMES))

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(folder)],
        cwd=folder,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    report = json.loads((folder / "report.json").read_text())
    return layers, folder, report


def test_fresh_process_never_imported_rbf_tf(reloaded):
    _, _, report = reloaded

    assert report["rbf_tf_imported"] is False


@pytest.mark.parametrize("name", NAMES)
def test_serving_default_has_a_free_batch_dimension(reloaded, name):
    layers, _, report = reloaded

    assert "signature" not in report[name]["errors"], report[name]["errors"]
    assert report[name]["signature_input_shape"] == [None, layers[name].input_dim]
    assert report[name]["signature_outputs"] == ["output_0"]


@pytest.mark.parametrize("name", NAMES)
def test_reloaded_object_is_callable(reloaded, name):
    _, _, report = reloaded

    assert report[name]["callable"] is True


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("name", NAMES)
def test_reloaded_outputs_equal_in_memory_outputs(reloaded, name, call, batch_size):
    layers, folder, report = reloaded
    layer = layers[name]
    expected = layer(inputs(layer, batch_size)).numpy()
    error = report[name]["errors"].get(f"{call}_{batch_size}")
    assert error is None, error

    y = np.load(folder / f"{name}_{call}_{batch_size}.npy")

    assert y.dtype == layer.dtype.as_numpy_dtype
    assert y.shape == (batch_size, layer.units)
    rtol = 1e-6 if layer.dtype == tf.float32 else 1e-13
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=1e-30)


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("name", NAMES)
def test_reloaded_gradients_equal_in_memory_gradients(reloaded, name, batch_size):
    layers, folder, report = reloaded
    layer = layers[name]
    x = tf.constant(inputs(layer, batch_size))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) ** 2)
    expected = tape.gradient(loss, x).numpy()
    error = report[name]["errors"].get(f"gradient_{batch_size}")
    assert error is None, error

    gradient = np.load(folder / f"{name}_gradient_{batch_size}.npy")

    rtol = 1e-5 if layer.dtype == tf.float32 else 1e-12
    np.testing.assert_allclose(gradient, expected, rtol=rtol, atol=1e-30)


def test_saving_keeps_the_checks_of_the_original_layer(tmp_path):
    layer = rbf_tf.GaussianRBF(3, 2)
    tf.saved_model.save(layer, str(tmp_path / "layer"))

    with pytest.raises(TypeError, match="dtype float32, got float64"):
        layer(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"shape \[batch_size, 3\]"):
        layer(np.zeros((2, 4), np.float32))


def test_saving_leaves_checkpoints_with_variables_only(tmp_path):
    layer = rbf_tf.GaussianRBF(3, 2)
    tf.saved_model.save(layer, str(tmp_path / "layer"))

    path = tf.train.Checkpoint(layer=layer).save(str(tmp_path / "checkpoint"))

    names = {name for name, _ in tf.train.list_variables(path)}
    assert names == {
        "_CHECKPOINTABLE_OBJECT_GRAPH",
        "layer/mu/.ATTRIBUTES/VARIABLE_VALUE",
        "layer/sigma/.ATTRIBUTES/VARIABLE_VALUE",
        "layer/w/.ATTRIBUTES/VARIABLE_VALUE",
        "save_counter/.ATTRIBUTES/VARIABLE_VALUE",
    }
