"""Tests of `rbf_tf.export`: serving SavedModels of classifiers and bare layers.

Three subprocesses start together, once per module: a fresh Python that never
imports rbf_tf reloads the exports and writes their outputs to .npz files,
`saved_model_cli show --all` describes an export, and a process that is killed
with SIGKILL in the middle of replacing an export shows that the previous one
survives. The tests compare against the models in memory, with a maximum
absolute difference of 1e-6.
"""

import json
import os
import signal
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

import rbf_tf
from rbf_tf import export, training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
BATCH_SIZES = (1, 1000)
CLASSIFIERS = ("gaussian", "dense")
ATOL = 1e-6
ERRORS = (TypeError, ValueError, tf.errors.InvalidArgumentError)

# Runs in a fresh process without rbf_tf on its path: argv[1] is the folder with
# the exports and images.npy. Writes outputs.npz and report.json there.
RELOAD_SCRIPT = r"""
import json
import os
import sys

import numpy as np
import tensorflow as tf

folder = sys.argv[1]
images = np.load(os.path.join(folder, "images.npy"))
outputs = {}
report = {}
for name in ("gaussian", "dense"):
    loaded = tf.saved_model.load(os.path.join(folder, name))
    report[name] = sorted(loaded.signatures)
    for batch_size in (1, 1000):
        x = images[:batch_size]
        flat = loaded.signatures["serving_default"](images=tf.constant(x))
        square = loaded.signatures["serving_2d"](
            images=tf.constant(x.reshape(-1, 28, 28)))
        for key in ("probabilities", "classes"):
            outputs[f"{name}/serving_default/{batch_size}/{key}"] = flat[key].numpy()
            outputs[f"{name}/serving_2d/{batch_size}/{key}"] = square[key].numpy()
rbf = tf.saved_model.load(os.path.join(folder, "rbf"))
for batch_size in (1, 1000):
    x = tf.constant(images[:batch_size])
    outputs[f"rbf/forward/{batch_size}"] = rbf.forward(x).numpy()
    outputs[f"rbf/serving_default/{batch_size}"] = (
        rbf.signatures["serving_default"](x=x)["outputs"].numpy())
report["rbf_tf_imported"] = sorted(
    name for name in sys.modules if name.split(".")[0] == "rbf_tf")
np.savez(os.path.join(folder, "outputs.npz"), **outputs)
with open(os.path.join(folder, "report.json"), "w") as f:
    json.dump(report, f)
"""

# Runs with rbf_tf importable: argv[1] holds an export to replace. The process
# kills itself once the new SavedModel is written, before it is moved into place.
KILL_SCRIPT = r"""
import os
import signal
import sys

import tensorflow as tf

import rbf_tf
from rbf_tf import export

real_save = tf.saved_model.save


def save_then_die(module, path, signatures=None):
    real_save(module, path, signatures=signatures)
    os.kill(os.getpid(), signal.SIGKILL)


tf.saved_model.save = save_then_die
hidden = rbf_tf.Dense(784, 8, seed=5)
export.export_classifier(rbf_tf.Classifier(hidden, seed=5), sys.argv[1],
                         overwrite=True)
"""


# Twenty made-up digit images: the test images are noisy copies of them, and
# the Gaussian classifier's centers, so that its answers differ between images.
PROTOTYPES = (np.random.default_rng(7).uniform(size=(20, 784)) < 0.2).astype(
    np.float32)


def mnist_like(rng, batch_size):
    """[batch_size, 784] float32 images in [0, 1], each near a prototype."""
    images = PROTOTYPES[rng.integers(0, len(PROTOTYPES), batch_size)]
    noise = rng.uniform(-0.3, 0.3, images.shape)
    return np.clip(images + noise, 0.0, 1.0).astype(np.float32)


def make_classifier(layer, seed=0, dtype=tf.float32):
    """A randomly initialised classifier whose outputs differ between inputs."""
    rng = np.random.default_rng(seed)
    if layer == "gaussian":
        hidden = rbf_tf.GaussianRBF(784, 20, mu=PROTOTYPES.T, sigma=8.0,
                                    w=rng.uniform(1.0, 5.0, 20), dtype=dtype)
    else:
        hidden = rbf_tf.Dense(784, 20, seed=seed, dtype=dtype)
    return rbf_tf.Classifier(hidden, seed=seed)


def in_memory(model, images):
    """The classifier's probabilities and classes, computed in this process."""
    logits = model(tf.constant(images, model.dtype))
    return {"probabilities": tf.nn.softmax(logits).numpy(),
            "classes": tf.argmax(logits, axis=1).numpy()}


def background(args, **kwargs):
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def finish(process, timeout=240):
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Exports two classifiers and a bare layer, then starts the subprocesses."""
    folder = tmp_path_factory.mktemp("exports")
    images = mnist_like(np.random.default_rng(1), 1000)
    np.save(folder / "images.npy", images)
    models = {name: make_classifier(name, seed=3) for name in CLASSIFIERS}
    for name, model in models.items():
        export.export_classifier(model, str(folder / name))
    rbf = models["gaussian"].hidden
    export.export_module(rbf, str(folder / "rbf"))

    victim = folder / "victim"
    export.export_classifier(make_classifier("dense", seed=4), str(victim))
    victim_files = {path: (victim / path).read_bytes()
                    for path in ("saved_model.pb", "variables/variables.index")}

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    script = folder / "reload.py"
    script.write_text(RELOAD_SCRIPT)
    processes = {
        "reload": background([sys.executable, str(script), str(folder)],
                             cwd=str(folder), env=env),
        "cli": background([SAVED_MODEL_CLI, "show", "--dir", str(folder / "gaussian"),
                           "--all"], cwd=str(folder), env=env),
        "kill": background([sys.executable, "-c", KILL_SCRIPT, str(victim)],
                           cwd=str(folder), env={**env, "PYTHONPATH": REPO}),
    }
    return {"folder": folder, "images": images, "models": models, "rbf": rbf,
            "processes": processes, "results": {}, "victim": victim,
            "victim_files": victim_files}


def result(exported, name):
    """(returncode, stdout, stderr) of one of the module's subprocesses."""
    if name not in exported["results"]:
        exported["results"][name] = finish(exported["processes"][name])
    return exported["results"][name]


@pytest.fixture(scope="module")
def reloaded(exported):
    returncode, _, stderr = result(exported, "reload")
    assert returncode == 0, stderr[-3000:]
    folder = exported["folder"]
    with open(folder / "report.json") as f:
        report = json.load(f)
    return report, dict(np.load(folder / "outputs.npz"))


@pytest.fixture(scope="module")
def loaded_gaussian(exported):
    return tf.saved_model.load(str(exported["folder"] / "gaussian"))


# Reloading in a fresh process.


def test_fresh_process_never_imported_rbf_tf(reloaded):
    report, _ = reloaded
    assert report["rbf_tf_imported"] == []


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_export_has_a_flat_and_a_square_signature(reloaded, name):
    report, _ = reloaded
    assert report[name] == ["serving_2d", "serving_default"]


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("signature", ("serving_default", "serving_2d"))
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_reloaded_outputs_equal_in_memory_outputs(exported, reloaded, name,
                                                  signature, batch_size):
    _, outputs = reloaded
    expected = in_memory(exported["models"][name], exported["images"][:batch_size])
    prefix = f"{name}/{signature}/{batch_size}"
    probabilities = outputs[f"{prefix}/probabilities"]
    classes = outputs[f"{prefix}/classes"]

    assert probabilities.dtype == np.float32 and probabilities.shape == (batch_size, 10)
    assert classes.dtype == np.int64 and classes.shape == (batch_size,)
    np.testing.assert_allclose(probabilities, expected["probabilities"], rtol=0,
                               atol=ATOL)
    np.testing.assert_array_equal(classes, expected["classes"])


def test_exported_classes_are_not_all_alike(reloaded):
    # Guards the comparisons above against a model that answers one class.
    _, outputs = reloaded
    assert len(np.unique(outputs["gaussian/serving_default/1000/classes"])) > 1


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("call", ("forward", "serving_default"))
def test_reloaded_bare_layer_equals_in_memory_layer(exported, reloaded, call,
                                                    batch_size):
    _, outputs = reloaded
    expected = exported["rbf"](exported["images"][:batch_size]).numpy()
    np.testing.assert_allclose(outputs[f"rbf/{call}/{batch_size}"], expected, rtol=0,
                               atol=ATOL)


# saved_model_cli.


def test_saved_model_cli_lists_the_signatures(exported):
    returncode, stdout, stderr = result(exported, "cli")
    assert returncode == 0, stderr[-3000:]
    default = stdout.split("signature_def['serving_default']:")[1]
    default = default.split("Method name is:")[0]
    square = stdout.split("signature_def['serving_2d']:")[1].split("Method name")[0]

    for block, shape in ((default, "(-1, 784)"), (square, "(-1, 28, 28)")):
        images = block.split("inputs['images'] tensor_info:")[1]
        assert "dtype: DT_FLOAT" in images.split("\n")[1]
        assert f"shape: {shape}" in images.split("\n")[2]
        probabilities = block.split("outputs['probabilities'] tensor_info:")[1]
        assert "dtype: DT_FLOAT" in probabilities and "shape: (-1, 10)" in probabilities
        classes = block.split("outputs['classes'] tensor_info:")[1]
        assert classes.split("\n")[1].strip() == "dtype: DT_INT64"
        assert classes.split("\n")[2].strip() == "shape: (-1)"


# Wrong inputs are errors.

WRONG_INPUTS = {
    "float64": ("serving_default", lambda x: tf.constant(x, tf.float64)),
    "int32": ("serving_default", lambda x: tf.cast(x > 0, tf.int32)),
    "width_783": ("serving_default", lambda x: tf.constant(x[:, :783])),
    "rank_3": ("serving_default", lambda x: tf.constant(x.reshape(-1, 28, 28))),
    "rank_1": ("serving_default", lambda x: tf.constant(x[0])),
    "square_28x27": ("serving_2d",
                     lambda x: tf.constant(x[:, :756].reshape(-1, 28, 27))),
    "square_flat": ("serving_2d", lambda x: tf.constant(x)),
    "square_float64": ("serving_2d",
                       lambda x: tf.constant(x.reshape(-1, 28, 28), tf.float64)),
    "raw_uint8_pixels": ("serving_default", lambda x: (255 * x).astype(np.uint8)),
    "raw_float_pixels": ("serving_default", lambda x: tf.constant(255 * x)),
    "nan": ("serving_default",
            lambda x: tf.constant(np.where(x > 0, np.nan, x).astype(np.float32))),
}


@pytest.mark.parametrize("case", sorted(WRONG_INPUTS))
def test_signature_refuses_wrong_input(exported, loaded_gaussian, case):
    signature, make = WRONG_INPUTS[case]
    images = make(exported["images"][:28])
    with pytest.raises(ERRORS):
        loaded_gaussian.signatures[signature](images=images)


@pytest.mark.parametrize("case", ("float64", "int32", "width_783", "rank_3"))
def test_reloaded_serve_function_refuses_wrong_input(exported, loaded_gaussian,
                                                     case):
    _, make = WRONG_INPUTS[case]
    with pytest.raises(ERRORS):
        loaded_gaussian.serve(make(exported["images"][:28]))


def test_wrong_width_is_refused_inside_the_graph(exported):
    # The in-graph shape check holds even for a caller that skips the Python
    # signature checks, e.g. a server feeding the graph directly.
    module = export.ServingModule(exported["models"]["gaussian"])
    any_width = tf.TensorSpec([None, None], tf.float32)
    unchecked = tf.function(module._serve, input_signature=[any_width])
    with pytest.raises(tf.errors.InvalidArgumentError, match="images"):
        unchecked(tf.constant(exported["images"][:4, :783]))


def test_numpy_float64_images_are_converted_not_misread(exported, loaded_gaussian):
    images = exported["images"][:50]
    converted = loaded_gaussian.signatures["serving_default"](
        images=images.astype(np.float64))
    expected = in_memory(exported["models"]["gaussian"], images)
    np.testing.assert_allclose(converted["probabilities"], expected["probabilities"],
                               rtol=0, atol=ATOL)


# Where an export may be written.


def test_non_empty_export_dir_is_refused(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")

    with pytest.raises(export.ExportDirError, match="is not empty.*notes.txt"):
        export.export_classifier(make_classifier("dense"), str(target))
    assert os.listdir(target) == ["notes.txt"]
    assert (target / "notes.txt").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["export"]  # No temporary folder left.


def test_file_as_export_dir_is_refused(tmp_path):
    (tmp_path / "export").write_text("")
    with pytest.raises(export.ExportDirError, match="is not a directory"):
        export.export_classifier(make_classifier("dense"), str(tmp_path / "export"))


def test_empty_export_dir_and_missing_parents_are_used(tmp_path):
    (tmp_path / "empty").mkdir()
    export.export_classifier(make_classifier("dense"), str(tmp_path / "empty"))
    export.export_classifier(make_classifier("dense"), str(tmp_path / "a" / "b"))
    for path in (tmp_path / "empty", tmp_path / "a" / "b"):
        assert (path / "saved_model.pb").is_file()
    assert sorted(os.listdir(tmp_path)) == ["a", "empty"]


def test_export_is_readable_by_others_under_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        export.export_classifier(make_classifier("dense"), str(tmp_path / "export"))
    finally:
        os.umask(previous)
    assert os.stat(tmp_path / "export").st_mode & 0o777 == 0o755


def test_overwrite_replaces_an_export(tmp_path, exported):
    target = str(tmp_path / "export")
    first, second = make_classifier("dense", seed=1), make_classifier("dense", seed=2)
    images = exported["images"][:100]
    export.export_classifier(first, target)
    (tmp_path / "export" / "stale.txt").write_text("from before")

    export.export_classifier(second, target, overwrite=True)
    outputs = tf.saved_model.load(target).signatures["serving_default"](images=images)
    np.testing.assert_allclose(outputs["probabilities"],
                               in_memory(second, images)["probabilities"], rtol=0,
                               atol=ATOL)
    assert not (tmp_path / "export" / "stale.txt").exists()
    assert os.listdir(tmp_path) == ["export"]


def test_failed_export_leaves_the_previous_one_untouched(tmp_path, monkeypatch):
    target = tmp_path / "export"
    export.export_classifier(make_classifier("dense", seed=1), str(target))
    before = (target / "saved_model.pb").read_bytes()

    def failing_save(module, path, signatures=None):
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        export.export_classifier(make_classifier("dense", seed=2), str(target),
                                 overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        export.export_classifier(make_classifier("dense", seed=2),
                                 str(tmp_path / "fresh"))
    assert (target / "saved_model.pb").read_bytes() == before
    assert os.listdir(tmp_path) == ["export"]


def test_export_killed_while_replacing_leaves_the_previous_one(exported):
    returncode, _, stderr = result(exported, "kill")
    assert returncode == -signal.SIGKILL, stderr[-3000:]
    victim = exported["victim"]
    for path, content in exported["victim_files"].items():
        assert (victim / path).read_bytes() == content
    outputs = tf.saved_model.load(str(victim)).signatures["serving_default"](
        images=exported["images"][:10])
    assert outputs["probabilities"].shape == (10, 10)
    # The new export was written completely but never moved into place.
    staging = [name for name in os.listdir(victim.parent)
               if name.startswith(".victim.tmp-")]
    assert len(staging) == 1
    assert (victim.parent / staging[0] / "saved_model.pb").is_file()


def test_export_dir_equal_to_output_dir_is_refused(tmp_path):
    with pytest.raises(export.ExportDirError, match="must not hold the output"):
        export.check_networks_export(str(tmp_path), str(tmp_path) + "/.")


def test_export_dir_holding_the_output_dir_is_refused(tmp_path):
    with pytest.raises(export.ExportDirError, match="must not hold the output"):
        export.check_networks_export(str(tmp_path), str(tmp_path / "runs" / "a"))
    export.check_networks_export(str(tmp_path / "exports"), str(tmp_path / "runs"))


# Other models.


def test_classifier_export_refuses_a_bare_layer(tmp_path):
    with pytest.raises(TypeError, match="Classifier, got GaussianRBF"):
        export.export_classifier(rbf_tf.GaussianRBF(784, 4), str(tmp_path / "e"))
    assert os.listdir(tmp_path) == []


def test_module_export_refuses_a_non_layer(tmp_path):
    with pytest.raises(TypeError, match="rbf_tf layer.*got Module"):
        export.export_module(tf.Module(), str(tmp_path / "e"))


def test_float64_classifier_serves_float32(tmp_path, exported):
    model = make_classifier("gaussian", seed=3, dtype=tf.float64)
    export.export_classifier(model, str(tmp_path / "export"))
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    images = exported["images"][:100]
    outputs = loaded.signatures["serving_default"](images=tf.constant(images))
    assert outputs["probabilities"].dtype == tf.float32
    np.testing.assert_allclose(outputs["probabilities"],
                               in_memory(model, images)["probabilities"], rtol=0,
                               atol=ATOL)


def test_non_square_input_has_no_square_signature(tmp_path):
    model = rbf_tf.Classifier(rbf_tf.GaussianRBF(10, 4), num_classes=3)
    export.export_classifier(model, str(tmp_path / "export"))
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    assert sorted(loaded.signatures) == ["serving_default"]
    outputs = loaded.signatures["serving_default"](images=tf.fill([2, 10], 0.5))
    assert outputs["probabilities"].shape == (2, 3)


def test_reloaded_bare_layer_trains_inside_another_graph(tmp_path, exported):
    rbf = exported["rbf"]
    export.export_module(rbf, str(tmp_path / "rbf"))
    loaded = tf.saved_model.load(str(tmp_path / "rbf"))
    images = tf.constant(exported["images"][:64])
    readout = tf.Variable(tf.ones([rbf.units, 1]))

    @tf.function
    def loss_of(layer_forward):
        return tf.reduce_sum(tf.matmul(layer_forward(images), readout) ** 2)

    with tf.GradientTape() as tape:
        reloaded_loss = loss_of(loaded.forward)
    reloaded_gradients = tape.gradient(
        reloaded_loss, [loaded.layer.mu, loaded.layer.sigma, loaded.layer.w])
    with tf.GradientTape() as tape:
        loss = loss_of(rbf.forward)
    gradients = tape.gradient(loss, [rbf.mu, rbf.sigma, rbf.w])

    for got, want in zip(reloaded_gradients, gradients, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    assert float(tf.reduce_max(tf.abs(gradients[0]))) > 0


def test_export_networks_serves_the_trained_weights(tmp_path):
    # A tiny training run on 4 x 4 images; the export answers as the run scored.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 240)
    images = np.clip(rng.normal(labels[:, None] / 3.0, 0.2, (240, 16)), 0, 1)
    images = images.astype(np.float32)
    config = training.NetworkConfig(units=6, epochs=2, batch_size=40,
                                    sigma_sample_size=20)
    record = training.train_network(
        config, images[:200], labels[:200], images[200:], labels[200:],
        output_dir=str(tmp_path / "run" / "g"))
    data = types.SimpleNamespace(train_images=images[:200], train_labels=labels[:200])

    paths = export.export_networks([("g", config)], str(tmp_path / "run"), data,
                                   str(tmp_path / "exports"))
    loaded = tf.saved_model.load(paths["g"])
    classes = loaded.signatures["serving_2d"](
        images=images[200:].reshape(-1, 4, 4))["classes"].numpy()
    accuracy = float(np.mean(classes == labels[200:]))
    assert accuracy == pytest.approx(record["final_test_accuracy"], abs=1e-9)


def test_restore_takes_the_class_count_from_the_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((40, 784), dtype=np.float32)
    labels = np.arange(40) % 10
    config = training.NetworkConfig(layer="gaussian", units=6, epochs=1,
                                    batch_size=20, sigma_sample_size=2)
    training.train_network(config, images, labels, images, labels,
                           output_dir=str(tmp_path))
    # Training labels that lack the higher classes, as in a small slice.
    model, _ = export.restore_classifier(
        config, str(tmp_path / "checkpoints"), images, labels % 3)
    assert model.num_classes == 10
