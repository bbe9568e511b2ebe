"""Tests of training under tf.distribute: TF_CONFIG, replicas, several workers.

Logical CPU devices and collective communication are fixed when TensorFlow
starts, so everything that needs them runs in fresh Python processes, each
started once per module:

* one process on 2 logical CPU devices compares a MirroredStrategy run with
  the single-device run of the same global batches, resumes checkpoints across
  strategies and exports a replicated model;
* two worker processes on 127.0.0.1 (ports found by binding port 0) run
  train.py --strategy=multi_worker end to end, then go on training with the
  same strategy through the library and dump their variables.

Tolerances. Splitting a global batch over replicas changes only the order of
float32 additions, so the mirrored run follows the single-device run to within
rounding: every step's loss within 1e-5 relative, and after 20 Adam steps every
variable within 1e-5 (absolute and relative; about 1e-6 is seen). Workers of a
multi-worker run apply identical all-reduced gradients, so their variables are
compared for exact equality.

Every child process has a time limit and is killed when a test fails, so a
hang cannot stall the suite.
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rbf_tf import datasets, distribute, training
from rbf_tf.distribute import ClusterConfigError, parse_tf_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCESS_SECONDS = 240
STEPS = 20
LOSS_RTOL = 1e-5
VARIABLE_TOL = 1e-5

# Shared by the child scripts: a small slice and a small network. 257 examples
# in batches of 64 end every epoch with a batch of one example, which leaves one
# of two replicas with nothing to do.
COMMON = r"""
import contextlib
import json
import os
import sys

import numpy as np
import tensorflow as tf

from rbf_tf import datasets, distribute, export, training

data = datasets.take_examples(datasets.load_dataset("mnist"), 257, seed=0)
images, labels = data.train_images, data.train_labels
test_images, test_labels = data.test_images[:500], data.test_labels[:500]
config = training.NetworkConfig(layer="gaussian", units=16, epochs=2,
                                batch_size=64, learning_rate=1e-2, seed=0)


def build(strategy):
    scope = strategy.scope() if strategy else contextlib.nullcontext()
    with scope:
        model = training.build_network(config, images, labels)
        groups = training.make_optimizers(config, model)
        step = training.make_train_step(model, groups, strategy=strategy)
    return model, groups, step


def train_steps(strategy, steps):
    model, groups, step = build(strategy)
    x, y = tf.constant(images), tf.constant(labels)
    losses, epoch = [], 0
    while len(losses) < steps:
        if strategy is None:
            batches = datasets.make_dataset(x, y, config.batch_size, shuffle=True,
                                            seed=config.seed, epoch=epoch)
        else:
            batches = training.replica_batches(strategy, x, y, config.batch_size,
                                               config.seed, epoch)
        for batch_images, batch_labels in batches:
            losses.append(float(step(batch_images, batch_labels)))
            if len(losses) == steps:
                break
        epoch += 1
    return model, groups, losses


def state(model, groups):
    variables = list(model.trainable_variables)
    variables += [v for opt, _ in groups for v in opt.variables]
    return {f"{i}:{v.name}": v.numpy() for i, v in enumerate(variables)}


def test_loss(model):
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=test_labels, logits=model(test_images))
    return float(tf.reduce_mean(losses))
"""

MIRRORED_SCRIPT = COMMON + r"""
out = sys.argv[1]
strategy = distribute.make_strategy("mirrored", cpu_devices=2)
report = {"replicas": strategy.num_replicas_in_sync}

single, single_groups, single_losses = train_steps(None, STEPS)
mirrored, mirrored_groups, mirrored_losses = train_steps(strategy, STEPS)
np.savez(os.path.join(out, "single.npz"), **state(single, single_groups))
np.savez(os.path.join(out, "mirrored.npz"), **state(mirrored, mirrored_groups))
report["single_losses"], report["mirrored_losses"] = single_losses, mirrored_losses
report["single_test_loss"] = test_loss(single)
report["mirrored_test_loss"] = test_loss(mirrored)
report["replica_spread"] = max(
    float(np.max(np.abs(copies[0].numpy() - copies[1].numpy())))
    for copies in (strategy.experimental_local_results(v)
                   for v in mirrored.variables))
report["steps_counted"] = [int(opt.step.numpy()) for opt, _ in mirrored_groups]

# The replicated model exports for serving like any other.
export.export_classifier(mirrored, os.path.join(out, "export"))
np.save(os.path.join(out, "served_input.npy"), test_images[:8])
np.save(os.path.join(out, "served_expected.npy"),
        tf.nn.softmax(mirrored(test_images[:8])).numpy())

# Checkpoints move between strategies: stop in the middle of epoch 2 under one
# strategy, finish under the other, compare with a run that never stopped.
def run(output_dir, strategy, stop_after_steps=None):
    return training.train_network(
        config, images, labels, test_images, test_labels, output_dir=output_dir,
        strategy=strategy, stop_after_steps=stop_after_steps)


report["uninterrupted"] = run(None, None)["epochs"]
run(os.path.join(out, "m2d"), strategy, stop_after_steps=6)
report["mirrored_then_default"] = run(os.path.join(out, "m2d"), None)["epochs"]
run(os.path.join(out, "d2m"), None, stop_after_steps=6)
report["default_then_mirrored"] = run(os.path.join(out, "d2m"), strategy)["epochs"]
with open(os.path.join(out, "report.json"), "w") as f:
    json.dump(report, f)
""".replace("STEPS", str(STEPS))

# argv: own_dir dump_dir train.py-flags... First train.py's main, which makes the
# strategy before any other TensorFlow operation runs; then the library.
WORKER_SCRIPT = r"""
import sys

import train

argv = ["train.py"] + sys.argv[3:]
train.parse_flags(argv)
if train.main(argv[:1]) != 0:
    sys.exit("train.py failed")
""" + COMMON + r"""
own_dir, dump_dir = sys.argv[1], sys.argv[2]
strategy = distribute.make_strategy("multi_worker")  # The one train.py made.
task = distribute.task_name(strategy).replace(" ", "")
model, groups, losses = train_steps(strategy, 8)
np.savez(os.path.join(dump_dir, f"{task}.npz"), **state(model, groups))
with open(os.path.join(dump_dir, f"{task}.json"), "w") as f:
    json.dump({"losses": losses, "chief": distribute.is_chief(strategy)}, f)

# Every worker saves (a collective step), only the chief into own_dir.
checkpoint = tf.train.Checkpoint(model=model,
                                 optimizers=[opt for opt, _ in groups])
checkpoint_dir = os.path.join(own_dir, "checkpoints")
save_dir = distribute.write_dir(checkpoint_dir, strategy)
tf.train.CheckpointManager(checkpoint, save_dir, max_to_keep=1).save()
distribute.remove_write_dir(save_dir, checkpoint_dir)
export_dir = os.path.join(own_dir, "export")
export_to = distribute.write_dir(export_dir, strategy)
export.export_classifier(model, export_to)
distribute.remove_write_dir(export_to, export_dir)
assert distribute.all_agree(strategy, True)
"""


# TF_CONFIG and strategy names, in this process.


def tf_config(cluster, task_type="worker", index=0):
    return json.dumps({"cluster": cluster, "task": {"type": task_type,
                                                    "index": index}})


def test_parse_tf_config_reads_cluster_and_task():
    config = parse_tf_config(tf_config(
        {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}, "worker", 1))
    assert config.cluster == {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}
    assert (config.task_type, config.task_index) == ("worker", 1)
    assert config.num_workers == 2
    assert not config.is_chief


@pytest.mark.parametrize("cluster, task_type, index, chief", [
    ({"worker": ["a:1", "b:1"]}, "worker", 0, True),
    ({"worker": ["a:1", "b:1"]}, "worker", 1, False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, "chief", 0, True),
    ({"chief": ["c:1"], "worker": ["a:1"]}, "worker", 0, False),
])
def test_chief_is_the_chief_task_or_worker_zero(cluster, task_type, index, chief):
    assert parse_tf_config(tf_config(cluster, task_type, index)).is_chief == chief


@pytest.mark.parametrize("text, message", [
    ("", "needs the TF_CONFIG environment variable"),
    ("{cluster", "TF_CONFIG must be JSON"),
    ("[1, 2]", "must be a JSON object with 'cluster' and 'task', got list"),
    ('{"cluster": {"worker": ["a:1"]}}', r"missing \['task'\]"),
    (tf_config({}), "'cluster' must map 'worker'"),
    (tf_config({"worker": ["a:1"], "ps": ["b:1"]}), r"task types .* got \['ps'\]"),
    (tf_config({"worker": "a:1"}), "must be a non-empty list"),
    (tf_config({"worker": ["a"]}), "'host:port' .* got 'a'"),
    (tf_config({"worker": ["a:70000"]}), "port from 1 to 65535, got 'a:70000'"),
    (tf_config({"worker": ["a:1", "a:1"]}), "distinct, got 'a:1' twice"),
    (tf_config({"chief": ["a:1", "b:1"], "worker": ["c:1"]}, "chief"),
     "at most one 'chief', got 2"),
    (tf_config({"worker": ["a:1"]}, "evaluator"), "got 'evaluator'"),
    (tf_config({"worker": ["a:1"]}, "worker", 1), r"in \[0, 1\) .* got 1"),
    (tf_config({"worker": ["a:1"]}, "worker", True), "integer, got True"),
])
def test_parse_tf_config_refuses_bad_configs(text, message):
    with pytest.raises(ClusterConfigError, match=message):
        parse_tf_config(text)


def test_parse_tf_config_reads_the_environment(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", tf_config({"worker": ["a:1"]}))
    assert parse_tf_config().is_chief
    monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(ClusterConfigError, match="unset or empty"):
        parse_tf_config()


def test_make_strategy_refuses_bad_arguments(monkeypatch):
    with pytest.raises(ValueError, match="strategy must be one of .* got 'tpu'"):
        distribute.make_strategy("tpu")
    with pytest.raises(ValueError, match="'mirrored' strategy only, got "
                                         "cpu_devices=2 with strategy 'default'"):
        distribute.make_strategy("default", cpu_devices=2)
    with pytest.raises(ValueError, match="non-negative int, got -1"):
        distribute.make_strategy("mirrored", cpu_devices=-1)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ClusterConfigError, match="needs the TF_CONFIG"):
        distribute.make_strategy("multi_worker")


def test_default_strategy_is_the_single_device_path(tmp_path):
    assert distribute.make_strategy("default") is None
    assert distribute.is_chief(None)
    assert distribute.task_name(None) == "chief"
    assert distribute.write_dir(str(tmp_path), None) == str(tmp_path)
    assert distribute.all_agree(None, True) and not distribute.all_agree(None, False)


def test_make_strategy_makes_each_strategy_once():
    strategy = distribute.make_strategy("mirrored")
    assert distribute.make_strategy("mirrored") is strategy
    assert distribute.is_chief(strategy) and distribute.task_name(strategy) == "chief"


def test_cpu_devices_are_refused_once_tensorflow_runs():
    with pytest.raises(ValueError, match="positive int, got 0"):
        distribute.configure_cpu_devices(0)
    tf.constant(1.0) + 1.0  # Starts the runtime, if no earlier test did.
    running = len(tf.config.list_logical_devices("CPU"))
    assert len(distribute.configure_cpu_devices(running)) == running
    with pytest.raises(RuntimeError, match="before TensorFlow runs any operation"):
        distribute.configure_cpu_devices(running + 1)


def test_replicated_step_refuses_variables_made_outside_the_scope():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    config = training.NetworkConfig(layer="dense", units=4)
    images = np.zeros((8, 784), np.float32)
    model = training.build_network(config, images, np.arange(8) % 2)
    groups = training.make_optimizers(config, model)
    with pytest.raises(ValueError, match="made under strategy.scope"):
        training.make_train_step(model, groups, strategy=strategy)


def test_train_network_refuses_to_run_inside_a_scope():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    images = np.zeros((8, 784), np.float32)
    labels = np.arange(8) % 2
    with strategy.scope(), pytest.raises(RuntimeError, match="outside strategy"):
        training.train_network(training.NetworkConfig(layer="dense", units=4),
                               images, labels, images, labels, strategy=strategy)


# Child processes.


def state(model, groups):
    """{index:name: value} of the model's and the optimisers' variables."""
    variables = list(model.trainable_variables)
    variables += [v for opt, _ in groups for v in opt.variables]
    return {f"{i}:{v.name}": v.numpy() for i, v in enumerate(variables)}


def child_env(**extra):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def free_ports(count):
    """Ports on 127.0.0.1 that were free a moment ago (bound to port 0)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM)
               for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_workers(tmp_path, argv_of, count=2):
    """Runs `count` workers of one cluster on 127.0.0.1; returns their outputs.

    `argv_of(index)` is the command line of worker `index`. Each worker gets
    its own empty TMPDIR, so that what it leaves there can be checked. All of
    them are killed if one fails to finish within PROCESS_SECONDS.
    """
    addresses = [f"127.0.0.1:{port}" for port in free_ports(count)]
    procs, logs = [], []
    try:
        for index in range(count):
            temp = tmp_path / f"tmp{index}"
            temp.mkdir()
            log = open(tmp_path / f"worker{index}.log", "w+")
            logs.append(log)
            env = child_env(TMPDIR=str(temp), TF_CONFIG=json.dumps({
                "cluster": {"worker": addresses},
                "task": {"type": "worker", "index": index}}))
            procs.append(subprocess.Popen(argv_of(index), cwd=REPO, env=env,
                                          stdout=log, stderr=subprocess.STDOUT))
        codes = [proc.wait(timeout=PROCESS_SECONDS) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    for index, code in enumerate(codes):
        assert code == 0, f"worker {index} exited with {code}:\n{outputs[index]}"
    return outputs


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mirrored")
    script = out / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(out)], cwd=REPO,
                            env=child_env(), capture_output=True, text=True,
                            timeout=PROCESS_SECONDS)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(out / "report.json") as f:
        return out, json.load(f)


@pytest.fixture(scope="module")
def worker_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("workers")
    script = root / "worker.py"
    script.write_text(WORKER_SCRIPT)
    dumps = root / "dumps"
    dumps.mkdir()
    outputs = run_workers(root, lambda i: [
        sys.executable, str(script), str(root / f"own{i}"), str(dumps),
        "--strategy=multi_worker", "--layer=dense", "--units=16", "--epochs=2",
        "--train_examples=256", "--plots=false", f"--output_dir={root / f'out{i}'}",
        f"--export_dir={root / f'export{i}'}"])
    return root, outputs


def test_mirrored_run_matches_single_device(mirrored_run):
    out, report = mirrored_run
    assert report["replicas"] == 2
    np.testing.assert_allclose(report["mirrored_losses"], report["single_losses"],
                               rtol=LOSS_RTOL)
    np.testing.assert_allclose(report["mirrored_test_loss"],
                               report["single_test_loss"], rtol=LOSS_RTOL)
    single, mirrored = np.load(out / "single.npz"), np.load(out / "mirrored.npz")
    assert sorted(single) == sorted(mirrored)
    for name in single:
        np.testing.assert_allclose(mirrored[name], single[name], rtol=VARIABLE_TOL,
                                   atol=VARIABLE_TOL, err_msg=name)


def test_mirrored_replicas_hold_one_state(mirrored_run):
    _, report = mirrored_run
    assert report["replica_spread"] == 0.0
    assert report["steps_counted"] == [STEPS] * 3  # mu; sigma and w; readout


@pytest.mark.parametrize("resumed", ["mirrored_then_default",
                                     "default_then_mirrored"])
def test_checkpoints_resume_under_another_strategy(mirrored_run, resumed):
    _, report = mirrored_run
    expected, got = report["uninterrupted"], report[resumed]
    assert [r["epoch"] for r in got] == [1, 2]
    for key in ("train_loss", "test_loss", "test_accuracy"):
        np.testing.assert_allclose([r[key] for r in got],
                                   [r[key] for r in expected], rtol=LOSS_RTOL,
                                   err_msg=key)


def test_replicated_model_export_serves_without_a_strategy(mirrored_run):
    out, _ = mirrored_run
    assert not tf.distribute.has_strategy()
    served = tf.saved_model.load(str(out / "export"))
    images = np.load(out / "served_input.npy")
    outputs = served.signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(outputs["probabilities"].numpy(),
                               np.load(out / "served_expected.npy"), atol=1e-6)


def test_workers_end_with_identical_variables(worker_run):
    dumps = worker_run[0] / "dumps"
    chief, other = np.load(dumps / "worker0.npz"), np.load(dumps / "worker1.npz")
    assert sorted(chief) == sorted(other) and len(chief) > 3
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    reports = [json.loads((dumps / f"worker{i}.json").read_text()) for i in (0, 1)]
    assert reports[0]["losses"] == reports[1]["losses"]
    assert len(reports[0]["losses"]) == 8
    assert [r["chief"] for r in reports] == [True, False]


def test_only_the_chief_writes_checkpoint_and_export(worker_run):
    root, _ = worker_run
    assert sorted(os.listdir(root / "own0")) == ["checkpoints", "export"]
    assert not (root / "own1").exists()
    for index in (0, 1):
        assert os.listdir(root / f"tmp{index}") == []


def test_multi_worker_checkpoint_and_export_serve_without_a_strategy(worker_run):
    root, _ = worker_run
    # Same network as the workers', restored here, where there is no strategy.
    data = datasets.take_examples(datasets.load_dataset("mnist"), 257, seed=0)
    config = training.NetworkConfig(layer="gaussian", units=16, epochs=2,
                                    batch_size=64, learning_rate=1e-2, seed=0)
    model = training.build_network(config, data.train_images, data.train_labels)
    groups = training.make_optimizers(config, model)
    for opt, variables in groups:
        opt.build(variables)
    checkpoint = tf.train.Checkpoint(model=model,
                                     optimizers=[opt for opt, _ in groups])
    latest = tf.train.latest_checkpoint(str(root / "own0" / "checkpoints"))
    checkpoint.restore(latest).assert_consumed()
    restored = state(model, groups)
    dumped = np.load(root / "dumps" / "worker1.npz")
    assert sorted(restored) == sorted(dumped)
    for name, value in restored.items():
        np.testing.assert_array_equal(value, dumped[name], err_msg=name)

    served = tf.saved_model.load(str(root / "own0" / "export"))
    x = np.random.default_rng(0).random((5, 784), dtype=np.float32)
    outputs = served.signatures["serving_default"](images=tf.constant(x))
    np.testing.assert_allclose(outputs["probabilities"].numpy(),
                               tf.nn.softmax(model(x)).numpy(), atol=1e-6)


def test_train_py_multi_worker_writes_from_the_chief_only(worker_run):
    root, outputs = worker_run
    out = root / "out0"
    assert sorted(os.listdir(out)) == ["dense", "results.json", "run.json"]
    assert sorted(os.listdir(out / "dense")) == ["checkpoints", "summaries"]
    assert os.path.exists(root / "export0" / "dense" / "saved_model.pb")
    assert not (root / "out1").exists() and not (root / "export1").exists()
    for index in (0, 1):
        assert os.listdir(root / f"tmp{index}") == []

    # Both workers saw the same losses (timings differ); the chief's results
    # record them.
    def epoch_lines(output, prefix=""):
        return [line[len(prefix):].split(" seconds ")[0]
                for line in output.splitlines()
                if line.startswith(prefix + "dense: epoch ") and "train_loss" in line]

    chief_lines = epoch_lines(outputs[0])
    assert len(chief_lines) == 2
    assert epoch_lines(outputs[1], "worker 1: ") == chief_lines
    results = json.loads((out / "results.json").read_text())
    (run,) = results["runs"]
    assert f"test_accuracy {run['final_test_accuracy']:.4f}" in chief_lines[-1]
    assert "done; the chief writes results" in outputs[1]


def test_train_py_refuses_cpu_devices_without_mirrored():
    result = subprocess.run(
        [sys.executable, "train.py", "--cpu_devices=2"], cwd=REPO, env=child_env(),
        capture_output=True, text=True, timeout=PROCESS_SECONDS)
    assert result.returncode == 1
    assert "--cpu_devices needs --strategy=mirrored" in result.stderr


def test_cleanup_helpers_leave_the_chief_folder(tmp_path):
    chief_dir = tmp_path / "keep"
    chief_dir.mkdir()
    distribute.remove_write_dir(str(chief_dir), str(chief_dir))
    assert chief_dir.exists()
    other = tmp_path / "scratch"
    other.mkdir()
    distribute.remove_write_dir(str(other), str(chief_dir))
    assert not other.exists()
    shutil.rmtree(chief_dir)
