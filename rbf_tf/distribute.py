"""Training on several devices or machines with `tf.distribute`.

Three strategies are offered by name:

* "default": no strategy; one device, the loop of `rbf_tf.training` as is.
* "mirrored": `tf.distribute.MirroredStrategy` over the local GPUs, or over N
  logical CPU devices (`cpu_devices=N`), which lets a CPU-only machine run and
  test the replicated step.
* "multi_worker": `tf.distribute.MultiWorkerMirroredStrategy`, one process per
  machine, the cluster described by the `TF_CONFIG` environment variable:

      {"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
       "task": {"type": "worker", "index": 0}}

  Worker 0 (or the task of type "chief", if the cluster has one) is the chief:
  it alone writes checkpoints, summaries, results and exports. The other
  workers take part in every collective operation, checkpoint saves included,
  and write what they must into a temporary folder that is removed at once.

Strategies must be made before TensorFlow runs its first operation: logical
devices and collective communication are fixed when the runtime starts.
"""

import dataclasses
import json
import os
import secrets
import shutil
import tempfile
from typing import Dict, List, Optional, Tuple

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")

# The strategies made in this process, by (name, cpu_devices). Devices and
# collective communication cannot change once TensorFlow runs, so asking again
# returns the strategy already made.
_MADE: Dict[Tuple[str, int], tf.distribute.Strategy] = {}

# Task types that take part in synchronous training. TF_CONFIG may name others
# (a parameter server, an evaluator), which MultiWorkerMirroredStrategy does not
# use, so they are refused.
TASK_TYPES = ("chief", "worker")


class ClusterConfigError(ValueError):
    """TF_CONFIG is missing, malformed or describes an unusable cluster."""


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """The cluster of a multi-worker run and this process's place in it.

    Attributes:
      cluster: task type ("chief", "worker") to its list of "host:port"
        addresses.
      task_type: the type of this process's task.
      task_index: its index in `cluster[task_type]`.
    """

    cluster: Dict[str, List[str]]
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        """Processes that train, the chief included."""
        return sum(len(addresses) for addresses in self.cluster.values())

    @property
    def is_chief(self) -> bool:
        """True for the chief task, or for worker 0 when there is no chief."""
        return chief_task(self.cluster, self.task_type, self.task_index)


def chief_task(cluster: Dict, task_type: Optional[str], task_index: int) -> bool:
    """Whether a task is the one that writes files.

    Args:
      cluster: task type to addresses, as in TF_CONFIG; may be empty.
      task_type: "chief", "worker", or None for a process outside a cluster.
      task_index: index of the task within its type.
    """
    if task_type is None or task_type == "chief":
        return True
    return task_type == "worker" and task_index == 0 and "chief" not in cluster


def parse_tf_config(text: Optional[str] = None) -> ClusterConfig:
    """Reads and checks TF_CONFIG for a MultiWorkerMirroredStrategy run.

    Args:
      text: the JSON text; default: the TF_CONFIG environment variable.

    Returns:
      The cluster and this process's task.

    Raises:
      ClusterConfigError: when TF_CONFIG is unset, not JSON, or does not name
        a cluster of "chief"/"worker" addresses and a task within it; the
        message says what was expected and what was found.
    """
    if text is None:
        text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        raise ClusterConfigError(
            "multi_worker training needs the TF_CONFIG environment variable, "
            'e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, "task": '
            '{"type": "worker", "index": 0}}, but it is unset or empty.')
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ClusterConfigError(
            f"TF_CONFIG must be JSON, got {text[:80]!r} ({e}).") from None
    if not isinstance(config, dict):
        raise ClusterConfigError(
            f"TF_CONFIG must be a JSON object with 'cluster' and 'task', got "
            f"{type(config).__name__}.")
    missing = [key for key in ("cluster", "task") if key not in config]
    if missing:
        raise ClusterConfigError(
            f"TF_CONFIG must have 'cluster' and 'task', got keys "
            f"{sorted(config)} (missing {missing}).")
    cluster = _check_cluster(config["cluster"])
    task_type, task_index = _check_task(config["task"], cluster)
    return ClusterConfig(cluster, task_type, task_index)


def _check_cluster(cluster) -> Dict[str, List[str]]:
    """The 'cluster' of TF_CONFIG, checked: known task types, host:port lists."""
    if not isinstance(cluster, dict) or not cluster:
        raise ClusterConfigError(
            f"TF_CONFIG 'cluster' must map 'worker' (and optionally 'chief') to "
            f"lists of host:port addresses, got {cluster!r}.")
    unknown = sorted(set(cluster) - set(TASK_TYPES))
    if unknown:
        raise ClusterConfigError(
            f"TF_CONFIG 'cluster' may only hold task types {list(TASK_TYPES)} for "
            f"multi_worker training, got {unknown}.")
    seen = set()
    for task_type, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise ClusterConfigError(
                f"TF_CONFIG cluster '{task_type}' must be a non-empty list of "
                f"host:port addresses, got {addresses!r}.")
        for address in addresses:
            _check_address(task_type, address)
            if address in seen:
                raise ClusterConfigError(
                    f"TF_CONFIG cluster addresses must be distinct, got "
                    f"{address!r} twice.")
            seen.add(address)
    if len(cluster.get("chief", [])) > 1:
        raise ClusterConfigError(
            f"TF_CONFIG cluster may have at most one 'chief', got "
            f"{len(cluster['chief'])}.")
    return {task_type: list(addresses) for task_type, addresses in cluster.items()}


def _check_address(task_type: str, address) -> None:
    """Raises ClusterConfigError unless `address` is "host:port", port 1-65535."""
    host, _, port = address.rpartition(":") if isinstance(address, str) else ("",) * 3
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterConfigError(
            f"TF_CONFIG cluster '{task_type}' addresses must be 'host:port' with a "
            f"port from 1 to 65535, got {address!r}.")


def _check_task(task, cluster: Dict[str, List[str]]):
    """The (type, index) of TF_CONFIG's 'task', checked against the cluster."""
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ClusterConfigError(
            f"TF_CONFIG 'task' must be {{\"type\": ..., \"index\": ...}}, got "
            f"{task!r}.")
    task_type, task_index = task["type"], task["index"]
    if task_type not in cluster:
        raise ClusterConfigError(
            f"TF_CONFIG task type must be one of the cluster's {sorted(cluster)}, "
            f"got {task_type!r}.")
    if isinstance(task_index, bool) or not isinstance(task_index, int):
        raise ClusterConfigError(
            f"TF_CONFIG task index must be an integer, got {task_index!r}.")
    if not 0 <= task_index < len(cluster[task_type]):
        raise ClusterConfigError(
            f"TF_CONFIG task index must be in [0, {len(cluster[task_type])}) for "
            f"the {len(cluster[task_type])} '{task_type}' addresses, got "
            f"{task_index}.")
    return task_type, task_index


def configure_cpu_devices(count: int) -> List[tf.config.LogicalDevice]:
    """Splits the first physical CPU into `count` logical devices.

    Must run before TensorFlow runs its first operation.

    Args:
      count: number of logical CPU devices, at least 1.

    Returns:
      The logical CPU devices, `count` of them.

    Raises:
      ValueError: if `count` is not a positive int.
      RuntimeError: if TensorFlow has already started with other devices.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"cpu_devices must be a positive int, got {count!r}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError:
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing == count:
            return tf.config.list_logical_devices("CPU")
        raise RuntimeError(
            f"cpu_devices={count} must be set before TensorFlow runs any "
            f"operation, but it already runs with {existing} CPU device(s); "
            f"configure the devices first thing in the process.") from None
    return tf.config.list_logical_devices("CPU")


def make_strategy(name: str, cpu_devices: int = 0) -> Optional[tf.distribute.Strategy]:
    """Makes the named strategy; call before TensorFlow runs any operation.

    Called again in the same process with the same arguments, it returns the
    strategy it made the first time.

    Args:
      name: "default", "mirrored" or "multi_worker" (see the module docstring).
      cpu_devices: for "mirrored", replicate over this many logical CPU devices
        instead of the local GPUs; 0 means the local GPUs (or the CPU when
        there is none). Must be 0 for the other strategies.

    Returns:
      None for "default" (the single-device loop), else the strategy.

    Raises:
      ValueError: for an unknown name or a `cpu_devices` the strategy does not
        use.
      ClusterConfigError: for "multi_worker" without a usable TF_CONFIG.
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}.")
    if isinstance(cpu_devices, bool) or not isinstance(cpu_devices, int) or (
            cpu_devices < 0):
        raise ValueError(
            f"cpu_devices must be a non-negative int, got {cpu_devices!r}.")
    if cpu_devices and name != "mirrored":
        raise ValueError(
            f"cpu_devices applies to the 'mirrored' strategy only, got "
            f"cpu_devices={cpu_devices} with strategy {name!r}.")
    if name == "default":
        return None
    key = (name, cpu_devices)
    if key not in _MADE:
        if name == "mirrored" and cpu_devices:
            devices = configure_cpu_devices(cpu_devices)
            _MADE[key] = tf.distribute.MirroredStrategy([d.name for d in devices])
        elif name == "mirrored":
            _MADE[key] = tf.distribute.MirroredStrategy()
        else:
            parse_tf_config()
            _MADE[key] = tf.distribute.MultiWorkerMirroredStrategy()
    return _MADE[key]


def is_chief(strategy: Optional[tf.distribute.Strategy] = None) -> bool:
    """Whether this process writes files: True unless a non-chief worker.

    Args:
      strategy: the run's strategy; None or a single-machine strategy makes
        this process the chief.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return True
    return chief_task(resolver.cluster_spec().as_dict(), resolver.task_type,
                      resolver.task_id or 0)


def task_name(strategy: Optional[tf.distribute.Strategy] = None) -> str:
    """"chief", or e.g. "worker 1": this process's task, for log lines."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return "chief"
    return f"{resolver.task_type} {resolver.task_id or 0}"


def write_dir(path: str, strategy: Optional[tf.distribute.Strategy] = None) -> str:
    """Where this process writes what belongs in `path`.

    The chief writes to `path` itself. Another worker gets a fresh path in the
    system's temporary folder, not yet created, unique to this process; it
    saves there (checkpoint saves are collective, so every worker saves) and
    removes the folder with `remove_write_dir` at once.

    Args:
      path: the folder the chief writes, e.g. the checkpoint folder.
      strategy: the run's strategy, or None.
    """
    if is_chief(strategy):
        return path
    name = task_name(strategy).replace(" ", "")
    return os.path.join(tempfile.gettempdir(),
                        f"rbf_tf-{name}-{os.getpid()}-{secrets.token_hex(4)}")


def remove_write_dir(write_path: str, path: str) -> None:
    """Removes `write_path` when it is a non-chief's temporary copy of `path`."""
    if os.path.abspath(write_path) != os.path.abspath(path):
        shutil.rmtree(write_path, ignore_errors=True)


def all_agree(strategy: Optional[tf.distribute.Strategy], ok: bool) -> bool:
    """True when `ok` is True in every worker; a collective step, so a barrier.

    Lets every worker stop together when one of them cannot go on (the chief
    refuses the output folder, say) instead of leaving the others waiting in
    the next collective operation.
    """
    if strategy is None:
        return bool(ok)
    vote = tf.constant(0.0 if ok else 1.0)

    @tf.function
    def count_failures():
        votes = strategy.run(lambda: tf.identity(vote))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)

    return float(count_failures()) == 0.0
