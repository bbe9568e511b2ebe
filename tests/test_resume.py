"""Killing train.py and running it again, against a run that was never stopped.

One module-wide scenario on a slice of MNIST, both networks, checkpoints every
10 steps. A run is killed with SIGKILL in the middle of the Gaussian network's
second epoch and started again; it must end where an uninterrupted run with the
same flags ends, whose results.json is read over and over while it is written.
Copies of the killed run's folder are run with --restart and with a changed
flag. The runs overlap in time to keep the module short.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import tensorflow as tf

from rbf_tf import training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "train.py")
FLAGS = ("--layer=both", "--train_examples=3000", "--units=50", "--epochs=3",
         "--batch_size=50", "--checkpoint_every_steps=10", "--noplots")
STEPS_PER_EPOCH = 3000 // 50
NETWORKS = ("gaussian", "dense")
KILL_ATTEMPTS = 3
TIMEOUT = 300


def command(output_dir, *extra):
    return [sys.executable, TRAIN, *FLAGS, f"--output_dir={output_dir}", *extra]


def start(args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process):
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    return {"returncode": process.returncode, "stdout": stdout, "stderr": stderr}


def progress(checkpoint_dir):
    """(epochs done, steps into the next epoch) of the latest checkpoint, or None.

    The folder may change while it is read (the trainer deletes old
    checkpoints), so a failed read counts as no checkpoint yet.
    """
    try:
        path = tf.train.latest_checkpoint(checkpoint_dir)
        if path is None:
            return None
        reader = tf.train.load_checkpoint(path)
        return (int(reader.get_tensor("progress/epoch/.ATTRIBUTES/VARIABLE_VALUE")),
                int(reader.get_tensor(
                    "progress/step_in_epoch/.ATTRIBUTES/VARIABLE_VALUE")))
    except (tf.errors.OpError, ValueError):
        return None


def mid_epoch_two(state):
    return state is not None and state[0] == 1 and 0 < state[1] < STEPS_PER_EPOCH


def kill_mid_epoch_two(args, cwd, output_dir, network):
    """Runs `args` and kills it with SIGKILL in `network`'s second epoch.

    Polls the network's checkpoints and kills the run as soon as the latest one
    lies inside epoch 2. Should the run get past that epoch first, the output
    folder is deleted and the run tried again.

    Returns:
      {"progress": (1, step) of the checkpoint the run was killed after,
       "stdout": what the run printed, "attempts": runs started}.
    """
    checkpoint_dir = os.path.join(output_dir, network, "checkpoints")
    state_file = os.path.join(checkpoint_dir, "checkpoint")
    for attempt in range(1, KILL_ATTEMPTS + 1):
        process = start(args, cwd)
        deadline = time.monotonic() + TIMEOUT
        seen = None
        while process.poll() is None and time.monotonic() < deadline:
            # Reading the small state file is cheap; the checkpoint itself is
            # read only when the state file has changed.
            try:
                with open(state_file) as f:
                    state = f.read()
            except FileNotFoundError:
                state = None
            if state and state != seen:
                seen = state
                if mid_epoch_two(progress(checkpoint_dir)):
                    process.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.005)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
        assert process.returncode in (0, -signal.SIGKILL), stderr[-3000:]
        state = progress(checkpoint_dir)
        if process.returncode == -signal.SIGKILL and mid_epoch_two(state):
            return {"progress": state, "stdout": stdout, "attempts": attempt}
        shutil.rmtree(output_dir, ignore_errors=True)
    pytest.fail(f"could not kill the run inside epoch 2 of {network} in "
                f"{KILL_ATTEMPTS} attempts")


def read_results(output_dir):
    with open(os.path.join(output_dir, "results.json")) as f:
        return json.load(f)


class ResultsReader(threading.Thread):
    """Reads a results.json over and over until stopped, parsing each read."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.reads = []  # Number of runs in each read, in order.
        self.failures = []

    def run(self):
        while not self.stop.is_set():
            try:
                with open(self.path) as f:
                    text = f.read()
            except FileNotFoundError:
                time.sleep(0.002)
                continue
            try:
                runs = len(json.loads(text)["runs"])
            except (ValueError, KeyError) as e:
                self.failures.append(f"{e}: {text[:200]!r}")
                continue
            if not self.reads or self.reads[-1] != runs:
                self.reads.append(runs)
            time.sleep(0.002)


def json_files_parse(output_dir):
    """Every .json file under `output_dir` (temporary files aside) is valid."""
    for folder, _, files in os.walk(output_dir):
        for name in files:
            if name.endswith(".json"):
                with open(os.path.join(folder, name)) as f:
                    json.load(f)
    return True


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    killed, whole = str(root / "killed"), str(root / "whole")
    restarted, changed = str(root / "restarted"), str(root / "changed")
    found = {}

    uninterrupted = start(command(whole), str(root))
    reader = ResultsReader(os.path.join(whole, "results.json"))
    reader.start()
    found["first_kill"] = kill_mid_epoch_two(command(killed), str(root), killed,
                                             "gaussian")
    found["after_first_kill"] = {
        "results_exist": os.path.exists(os.path.join(killed, "results.json")),
        "json_parses": json_files_parse(killed)}

    shutil.copytree(killed, restarted)
    (root / "restarted" / "notes.txt").write_text("not train.py's")
    shutil.copytree(killed, changed)
    run_json = (root / "changed" / "run.json").read_bytes()
    others = {
        "restart": start(command(restarted, "--restart"), str(root)),
        "changed": start([*command(changed), "--units=51"], str(root)),
    }

    found["final"] = finish(start(command(killed), str(root)))
    found["uninterrupted"] = finish(uninterrupted)
    reader.stop.set()
    reader.join()
    found["reader"] = {"reads": reader.reads, "failures": reader.failures}
    for name, process in others.items():
        found[name] = finish(process)
    found["changed_run_json_kept"] = (
        (root / "changed" / "run.json").read_bytes() == run_json)
    found["notes_kept"] = (root / "restarted" / "notes.txt").exists()
    found["dirs"] = {"killed": killed, "whole": whole, "restarted": restarted}
    return found


def records(output_dir):
    return {run["name"]: run for run in read_results(output_dir)["runs"]}


def assert_same_training(got, want):
    """Same epochs, losses and accuracies; timings aside."""
    assert [r["epoch"] for r in got["epochs"]] == [r["epoch"] for r in want["epochs"]]
    for mine, theirs in zip(got["epochs"], want["epochs"], strict=True):
        for key in ("train_loss", "test_loss", "test_accuracy"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-6, abs=1e-9), key
    assert abs(got["final_test_accuracy"] - want["final_test_accuracy"]) <= 0.001


def test_runs_that_should_succeed_succeed(scenario):
    for name in ("final", "uninterrupted", "restart"):
        assert scenario[name]["returncode"] == 0, scenario[name]["stderr"][-3000:]


def test_first_kill_lands_inside_the_gaussian_second_epoch(scenario):
    epochs_done, step = scenario["first_kill"]["progress"]
    assert epochs_done == 1 and 0 < step < STEPS_PER_EPOCH
    assert "gaussian: epoch 1/3" in scenario["first_kill"]["stdout"]


def test_second_run_resumes_the_gaussian_network_where_it_was_killed(scenario):
    _, step = scenario["first_kill"]["progress"]
    stdout = scenario["final"]["stdout"]
    assert "(resuming)" in stdout.splitlines()[0]
    assert "gaussian: resumed from" in stdout
    assert f"at epoch 2, step {step}" in stdout
    assert "gaussian: epoch 1/3" not in stdout
    assert "dense: epoch 1/3" in stdout


@pytest.mark.parametrize("network", NETWORKS)
def test_killed_and_resumed_run_ends_as_the_uninterrupted_run(scenario, network):
    got = records(scenario["dirs"]["killed"])[network]
    want = records(scenario["dirs"]["whole"])[network]
    assert len(got["epochs"]) == len(want["epochs"]) == 3
    assert_same_training(got, want)


def test_nothing_half_written_after_the_kill(scenario):
    # Killed in the first network: no results yet, and run.json intact.
    assert scenario["after_first_kill"] == {"results_exist": False,
                                            "json_parses": True}


def test_results_read_while_being_written_are_always_valid_json(scenario):
    # One record after the Gaussian network, two after the dense one.
    assert scenario["reader"] == {"reads": [1, 2], "failures": []}


@pytest.mark.parametrize("network", NETWORKS)
def test_restart_trains_afresh_to_the_same_result(scenario, network):
    stdout = scenario["restart"]["stdout"]
    assert "resumed" not in stdout and "already trained" not in stdout
    assert f"{network}: epoch 1/3" in stdout
    assert_same_training(records(scenario["dirs"]["restarted"])[network],
                         records(scenario["dirs"]["whole"])[network])


def test_restart_leaves_files_it_did_not_write(scenario):
    assert scenario["notes_kept"]


def test_changed_flag_in_the_same_folder_is_refused(scenario):
    changed = scenario["changed"]
    assert changed["returncode"] == 1
    lines = changed["stderr"].splitlines()
    assert len(lines) == 1, changed["stderr"]
    assert lines[0].startswith("train.py: error:")
    assert "units: 50 then, 51 now" in lines[0] and "--restart" in lines[0]
    assert "Traceback" not in changed["stderr"] + changed["stdout"]
    assert scenario["changed_run_json_kept"]


def test_write_atomically_keeps_the_old_file_when_writing_fails(tmp_path,
                                                                monkeypatch):
    path = tmp_path / "results.json"
    training.write_atomically(str(path), json.dumps({"runs": [1]}))

    def fail(descriptor):
        raise OSError("killed while writing")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="killed while writing"):
        training.write_atomically(str(path), json.dumps({"runs": [1, 2]}) + " " * 10**6)
    assert json.loads(path.read_text()) == {"runs": [1]}
