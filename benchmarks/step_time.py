"""Training-step time of the Gaussian and the dense classifier, and how it grows.

Times one full training step, the one `rbf_tf.training.make_train_step` builds:
forward, softmax cross-entropy, backward and an `rbf_tf.Adam` update, for an
`rbf_tf.Classifier` whose hidden layer is

  gaussian_fast       `GaussianRBF(distance="fast")`, one matrix product forward;
  gaussian_reference  `GaussianRBF(distance="reference")`, a [B, n, m] broadcast;
  dense               `Dense(activation="relu")` of the same shape;

each with and without XLA (`jit_compile`). All variants run round-robin in one
process, one step each per round with the starting variant rotated, so a change
in machine load hits them alike; a ratio is the median over rounds of the
per-round ratio. The reference runs in every k-th round only, as it is slow.

Inputs are a fixed synthetic MNIST-like batch (a fifth of the pixels inked,
uniform in [0, 1]), the same for every step; the step's cost hardly depends on
the values.

Columns:
  wall ms      median wall-clock time of one step, after warm-up.
  p10-p90      10th and 90th percentile of that time.
  cpu ms       median CPU time of the process during one step, all threads;
               less disturbed than wall time when other processes share the CPU.
  first s      the first call: tracing, graph optimisation and XLA compilation.
  step peak    the most bytes TensorFlow's allocator held during one step above
               what it held before: activations, gradients and temporaries,
               XLA's buffers included, kernels' private scratch not (read with
               tf.config.experimental.get_memory_info after resetting its peak).
  largest      the largest tensor of the step, from its shape: B*n*m for the
               reference, max(n*m, B*m, B*n) otherwise.
  state        variables plus the two Adam slots per variable.

Usage (from the repository root):

  python benchmarks/step_time.py                  # default shape: table, ratios
  python benchmarks/step_time.py --sweep          # instead: time against units
                                                  # and against batch size
  python benchmarks/step_time.py --end_to_end     # instead: MNIST epochs through
                                                  # rbf_tf.training against the step
  python benchmarks/step_time.py --output=step_time.json
"""

import collections
import dataclasses
import gc
import json
import math
import os
import platform
import re
import sys
import time
from typing import Dict, List, Optional

import numpy as np
from absl import app, flags

if __package__ in (None, ""):
    # Run as a script: make the repository's rbf_tf importable.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

import rbf_tf  # noqa: E402
from rbf_tf import datasets, training  # noqa: E402

LAYERS = ("gaussian_fast", "gaussian_reference", "dense")
XLA_MODES = {"both": (False, True), "off": (False,), "on": (True,)}
FAST_OVER_DENSE_TARGET = 1.3
REFERENCE_OVER_FAST_TARGET = 20.0
END_TO_END_TARGET = 0.85
MIB = 2.0**20

FLAGS = flags.FLAGS
flags.DEFINE_integer("input_dim", 784, "Input width n.", lower_bound=1)
flags.DEFINE_integer("units", 1000, "Hidden units m.", lower_bound=1)
flags.DEFINE_integer("batch_size", 128, "Examples per step B.", lower_bound=1)
flags.DEFINE_integer("num_classes", 10, "Classes k of the readout.", lower_bound=2)
flags.DEFINE_list(
    "layers", list(LAYERS), f"Hidden layers to time, a subset of {LAYERS}."
)
flags.DEFINE_enum("xla", "both", list(XLA_MODES), "Time without XLA, with it, or both.")
flags.DEFINE_integer(
    "steps", 200, "Timed rounds; each times one step of every variant.", lower_bound=3
)
flags.DEFINE_integer(
    "reference_steps",
    20,
    "Timed steps of each reference variant, spread evenly over the rounds.",
    lower_bound=1,
)
flags.DEFINE_integer(
    "warmup", 5, "Untimed steps of each variant before timing.", lower_bound=1
)
flags.DEFINE_bool("sweep", False, "Time against --sweep_units and --sweep_batch.")
flags.DEFINE_list(
    "sweep_units", ["100", "250", "500", "1000", "2000", "4000"], "Units of the sweep."
)
flags.DEFINE_list(
    "sweep_batch",
    ["32", "64", "128", "256", "512", "1024"],
    "Batch sizes of the sweep.",
)
flags.DEFINE_integer(
    "sweep_steps", 30, "Timed rounds per point of the sweep.", lower_bound=3
)
flags.DEFINE_float(
    "reference_max_mib",
    512.0,
    "The sweep skips the reference where its [B, n, m] tensor exceeds this.",
    lower_bound=0.0,
)
flags.DEFINE_bool(
    "end_to_end",
    False,
    "Train on MNIST through rbf_tf.training and compare the epoch's throughput "
    "with the isolated step's.",
)
flags.DEFINE_integer(
    "end_to_end_epochs",
    3,
    "Epochs per network in --end_to_end; those after the first, free of "
    "tracing and compilation, are compared.",
    lower_bound=2,
)
flags.DEFINE_integer("seed", 0, "Seeds the data and the initial values.")
flags.DEFINE_integer(
    "threads",
    0,
    "TensorFlow intra-op threads; 0 leaves TensorFlow's default.",
    lower_bound=0,
)
flags.DEFINE_string("output", None, "Also write the results to this JSON file.")

FLAG_NAMES = (
    "input_dim",
    "units",
    "batch_size",
    "num_classes",
    "layers",
    "xla",
    "steps",
    "reference_steps",
    "warmup",
    "sweep",
    "sweep_units",
    "sweep_batch",
    "sweep_steps",
    "reference_max_mib",
    "end_to_end",
    "end_to_end_epochs",
    "seed",
    "threads",
    "output",
)

flags.register_validator(
    "layers",
    lambda layers: bool(layers) and set(layers) <= set(LAYERS),
    message=f"--layers must be a non-empty subset of {LAYERS}.",
)
for _name in ("sweep_units", "sweep_batch"):
    flags.register_validator(
        _name,
        lambda values: bool(values) and all(v.isdigit() and int(v) > 0 for v in values),
        message=f"--{_name} must be a comma-separated list of positive integers.",
    )


@dataclasses.dataclass(frozen=True)
class Shape:
    """input_dim n, units m, batch_size B and num_classes k of one benchmark."""

    input_dim: int
    units: int
    batch_size: int
    num_classes: int


@dataclasses.dataclass
class Variant:
    """One hidden layer and XLA setting, its step and what was measured."""

    layer: str
    jit_compile: bool
    step: object
    state_bytes: int
    largest_bytes: int
    wall: Dict[int, float] = dataclasses.field(default_factory=dict)  # round -> s
    cpu: Dict[int, float] = dataclasses.field(default_factory=dict)
    first_call_s: float = float("nan")
    step_peak_bytes: Optional[int] = None

    @property
    def name(self) -> str:
        return self.layer + ("+xla" if self.jit_compile else "")

    @property
    def is_reference(self) -> bool:
        return self.layer == "gaussian_reference"


def synthetic_batch(shape: Shape, seed: int):
    """([B, n] float32 MNIST-like images, [B] int64 labels) as tensors."""
    rng = np.random.default_rng(seed)
    size = (shape.batch_size, shape.input_dim)
    images = rng.uniform(0.0, 1.0, size) * (rng.uniform(size=size) < 0.2)
    labels = rng.integers(0, shape.num_classes, shape.batch_size)
    return tf.constant(images, tf.float32), tf.constant(labels, tf.int64)


def largest_tensor_bytes(layer: str, shape: Shape) -> int:
    """Bytes of the step's largest float32 tensor, from the shapes alone."""
    n, m, b = shape.input_dim, shape.units, shape.batch_size
    if layer == "gaussian_reference":
        return 4 * b * n * m
    return 4 * max(n * m, b * m, b * n)


def build_variant(layer: str, jit_compile: bool, shape: Shape, seed: int) -> Variant:
    """A fresh classifier, Adam and the training step of `rbf_tf.training`."""
    n, m = shape.input_dim, shape.units
    if layer == "dense":
        hidden = rbf_tf.Dense(n, m, activation="relu", seed=seed)
    else:
        distance = "fast" if layer == "gaussian_fast" else "reference"
        hidden = rbf_tf.GaussianRBF(n, m, distance=distance, seed=seed)
    model = rbf_tf.Classifier(hidden, num_classes=shape.num_classes, seed=seed)
    step = training.make_train_step(model, rbf_tf.Adam(), jit_compile=jit_compile)
    return Variant(
        layer=layer,
        jit_compile=jit_compile,
        step=step,
        state_bytes=3 * 4 * rbf_tf.count_parameters(model),
        largest_bytes=largest_tensor_bytes(layer, shape),
    )


def memory_device() -> str:
    """The device whose allocator the step's tensors live in."""
    return "GPU:0" if tf.config.list_logical_devices("GPU") else "CPU:0"


def run_step(variant: Variant, images, labels) -> float:
    """Runs one step to completion and returns its loss."""
    return float(variant.step(images, labels).numpy())


def warm_up(variant: Variant, images, labels, steps: int) -> None:
    """Traces and compiles the step, then runs it until it is warm."""
    start = time.perf_counter()
    run_step(variant, images, labels)
    variant.first_call_s = time.perf_counter() - start
    for _ in range(steps - 1):
        run_step(variant, images, labels)


def measure_step_peak(variant: Variant, images, labels) -> None:
    """Peak allocator bytes of one step above those held before it."""
    device = memory_device()
    try:
        tf.config.experimental.reset_memory_stats(device)
        before = tf.config.experimental.get_memory_info(device)["current"]
        run_step(variant, images, labels)
        peak = tf.config.experimental.get_memory_info(device)["peak"]
    except (ValueError, tf.errors.OpError):
        return  # This device keeps no allocator statistics.
    variant.step_peak_bytes = int(peak - before)


def time_round_robin(
    variants: List[Variant], images, labels, rounds: int, reference_steps: int
) -> None:
    """Times one step of every variant per round, rotating who goes first."""
    reference_every = max(1, rounds // reference_steps)
    for round_index in range(rounds):
        shift = round_index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            if variant.is_reference and round_index % reference_every:
                continue
            cpu_start = time.process_time()
            start = time.perf_counter()
            run_step(variant, images, labels)
            variant.wall[round_index] = time.perf_counter() - start
            variant.cpu[round_index] = time.process_time() - cpu_start


def warm_runtime() -> None:
    """Runs a tiny step in each XLA mode to start the runtime and the compiler.

    Without it the first variant's first call would also pay for those.
    """
    tiny = Shape(input_dim=8, units=4, batch_size=2, num_classes=2)
    images, labels = synthetic_batch(tiny, 0)
    for jit in XLA_MODES[FLAGS.xla]:
        run_step(build_variant("dense", jit, tiny, 0), images, labels)


def benchmark(
    shape: Shape, layers: List[str], rounds: int, reference_steps: int
) -> List[Variant]:
    """Builds, warms up and times each of `layers` in every XLA mode of the flags."""
    warm_runtime()
    images, labels = synthetic_batch(shape, FLAGS.seed)
    variants = [
        build_variant(layer, jit, shape, FLAGS.seed)
        for jit in XLA_MODES[FLAGS.xla]
        for layer in layers
    ]
    for variant in variants:
        warm_up(variant, images, labels, FLAGS.warmup)
        measure_step_peak(variant, images, labels)
    time_round_robin(variants, images, labels, rounds, reference_steps)
    return variants


def paired_ratio(numerator: Variant, denominator: Variant) -> float:
    """Median over shared rounds of numerator's wall time / denominator's."""
    shared = sorted(set(numerator.wall) & set(denominator.wall))
    if not shared:
        return float("nan")
    return float(np.median([numerator.wall[r] / denominator.wall[r] for r in shared]))


def summary_of(variant: Variant) -> Dict:
    wall = np.array(list(variant.wall.values())) * 1e3
    cpu = np.array(list(variant.cpu.values())) * 1e3
    return {
        "layer": variant.layer,
        "jit_compile": variant.jit_compile,
        "steps_timed": int(wall.size),
        "wall_ms_median": float(np.median(wall)),
        "wall_ms_p10": float(np.percentile(wall, 10)),
        "wall_ms_p90": float(np.percentile(wall, 90)),
        "cpu_ms_median": float(np.median(cpu)),
        "first_call_s": variant.first_call_s,
        "step_peak_mib": (
            None if variant.step_peak_bytes is None else variant.step_peak_bytes / MIB
        ),
        "largest_tensor_mib": variant.largest_bytes / MIB,
        "state_mib": variant.state_bytes / MIB,
    }


def ratios_of(variants: List[Variant]) -> Dict[str, float]:
    """The headline ratios between the variants that were timed."""
    by_name = {v.name: v for v in variants}
    ratios = {}
    for suffix in ("", "+xla"):
        fast = by_name.get("gaussian_fast" + suffix)
        dense = by_name.get("dense" + suffix)
        reference = by_name.get("gaussian_reference" + suffix)
        if fast and dense:
            ratios["gaussian_fast/dense" + suffix] = paired_ratio(fast, dense)
        if fast and reference:
            ratios["gaussian_reference/gaussian_fast" + suffix] = paired_ratio(
                reference, fast
            )
    for layer in LAYERS:
        if layer in by_name and layer + "+xla" in by_name:
            ratios[f"{layer}: no xla/xla"] = paired_ratio(
                by_name[layer], by_name[layer + "+xla"]
            )
    return ratios


def target_note(name: str, value: float) -> str:
    if name.startswith("gaussian_fast/dense"):
        met = value <= FAST_OVER_DENSE_TARGET
        return f"target <= {FAST_OVER_DENSE_TARGET}: {'met' if met else 'MISSED'}"
    if name.startswith("gaussian_reference/gaussian_fast"):
        met = value >= REFERENCE_OVER_FAST_TARGET
        return f"target >= {REFERENCE_OVER_FAST_TARGET:g}: {'met' if met else 'MISSED'}"
    return "above 1: XLA is faster" if value > 1 else "below 1: XLA is slower"


def format_mib(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def print_table(shape: Shape, summaries: List[Dict], ratios: Dict[str, float]):
    print(
        f"\nFull training step, input {shape.input_dim}, {shape.units} units, "
        f"batch {shape.batch_size}, {shape.num_classes} classes (float32, Adam)"
    )
    header = (
        f"{'variant':26s} {'steps':>5s} {'wall ms':>9s} {'p10-p90':>15s} "
        f"{'cpu ms':>8s} {'first s':>7s} {'step peak MiB':>13s} "
        f"{'largest MiB':>11s} {'state MiB':>9s}"
    )
    print(header)
    print("-" * len(header))
    for s in summaries:
        name = variant_name(s)
        spread = f"{s['wall_ms_p10']:.2f}-{s['wall_ms_p90']:.2f}"
        print(
            f"{name:26s} {s['steps_timed']:5d} {s['wall_ms_median']:9.2f} "
            f"{spread:>15s} {s['cpu_ms_median']:8.2f} {s['first_call_s']:7.2f} "
            f"{format_mib(s['step_peak_mib']):>13s} "
            f"{s['largest_tensor_mib']:11.1f} {s['state_mib']:9.1f}"
        )
    recompiled = [
        variant_name(s)
        for s in summaries
        if s["jit_compile"] and s["wall_ms_median"] > 0.2e3 * s["first_call_s"]
    ]
    if recompiled:
        print(
            f"Note: each step of {', '.join(recompiled)} takes over a fifth of its "
            f"first call, which includes compilation; a compiled step is usually "
            f"hundreds of times faster, so XLA appears to compile it on every call."
        )
    print("\nRatios (median over rounds of the per-round ratio of wall times):")
    for name, value in ratios.items():
        print(f"  {name:40s} {value:7.2f}   {target_note(name, value)}")


def environment() -> Dict:
    return {
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "device": memory_device(),
        "load_average_start": list(os.getloadavg()),
    }


def run_default() -> Dict:
    shape = Shape(FLAGS.input_dim, FLAGS.units, FLAGS.batch_size, FLAGS.num_classes)
    variants = benchmark(shape, FLAGS.layers, FLAGS.steps, FLAGS.reference_steps)
    summaries = [summary_of(v) for v in variants]
    ratios = ratios_of(variants)
    print_table(shape, summaries, ratios)
    return {
        "shape": dataclasses.asdict(shape),
        "variants": summaries,
        "ratios": ratios,
    }


# The sweep.


def sweep_point(shape: Shape) -> Dict:
    """Times one point of the sweep; the reference only while it fits the cap."""
    layers = list(FLAGS.layers)
    skipped = None
    reference_mib = largest_tensor_bytes("gaussian_reference", shape) / MIB
    if "gaussian_reference" in layers and reference_mib > FLAGS.reference_max_mib:
        layers.remove("gaussian_reference")
        skipped = (
            f"reference skipped: its [B, n, m] tensor is {reference_mib:.0f} MiB, "
            f"above --reference_max_mib={FLAGS.reference_max_mib:g}"
        )
    reference_steps = max(1, min(5, FLAGS.sweep_steps // 6))
    variants = benchmark(shape, layers, FLAGS.sweep_steps, reference_steps)
    point = {
        "shape": dataclasses.asdict(shape),
        "variants": [summary_of(v) for v in variants],
        "ratios": ratios_of(variants),
        "skipped": skipped,
    }
    del variants
    gc.collect()
    return point


SHORT_NAMES = {"gaussian_fast": "fast", "gaussian_reference": "ref", "dense": "dense"}


def variant_name(summary: Dict, short: bool = False) -> str:
    layer = SHORT_NAMES[summary["layer"]] if short else summary["layer"]
    return layer + ("+xla" if summary["jit_compile"] else "")


def print_sweep(axis: str, points: List[Dict]) -> None:
    """One row per point: step times, fast/dense ratios and peak step memory."""
    names, short = [], []
    for point in points:
        for summary in point["variants"]:
            if variant_name(summary) not in names:
                names.append(variant_name(summary))
                short.append(variant_name(summary, short=True))
    print(
        f"\nStep time (median wall ms) against {axis}; fast = gaussian_fast, "
        f"ref = gaussian_reference;\nfast/dense is the paired ratio; peak is "
        f"the step's peak MiB (see the module docstring)."
    )
    header = f"{axis:>10s}" + "".join(f"{n:>11s}" for n in short)
    header += f"{'fast/dense':>11s}{'(+xla)':>8s}{'fast peak':>10s}{'ref peak':>10s}"
    print(header)
    for point in points:
        values = {variant_name(s): s for s in point["variants"]}
        row = f"{point['shape'][axis]:>10d}"
        for name in names:
            ms = values[name]["wall_ms_median"] if name in values else None
            row += f"{'-':>11s}" if ms is None else f"{ms:>11.2f}"
        ratios = point["ratios"]
        row += f"{ratios.get('gaussian_fast/dense', float('nan')):>11.2f}"
        row += f"{ratios.get('gaussian_fast/dense+xla', float('nan')):>8.2f}"
        for layer in ("gaussian_fast", "gaussian_reference"):
            peak = values.get(layer, {}).get("step_peak_mib")
            row += f"{format_mib(peak) if layer in values else '-':>10s}"
        print(row)
    for point in points:
        if point["skipped"]:
            print(f"  {axis} {point['shape'][axis]}: {point['skipped']}")
    growth = growth_exponents(axis, points, names)
    print(
        f"Growth exponent p, time ~ {axis}^p from the first point to the last: "
        + ", ".join(f"{n} {p:.2f}" for n, p in growth.items())
    )


def growth_exponents(axis: str, points: List[Dict], names: List[str]) -> Dict:
    """log(t_last / t_first) / log(x_last / x_first) for each variant."""
    exponents = {}
    for name in names:
        series = [
            (point["shape"][axis], s["wall_ms_median"])
            for point in points
            for s in point["variants"]
            if variant_name(s) == name
        ]
        if len(series) >= 2 and series[-1][0] != series[0][0]:
            (x0, t0), (x1, t1) = series[0], series[-1]
            exponents[name] = math.log(t1 / t0) / math.log(x1 / x0)
    return exponents


def run_sweep() -> Dict:
    results = {}
    for axis, values in (
        ("units", FLAGS.sweep_units),
        ("batch_size", FLAGS.sweep_batch),
    ):
        points = []
        for value in (int(v) for v in values):
            sizes = {
                "input_dim": FLAGS.input_dim,
                "units": FLAGS.units,
                "batch_size": FLAGS.batch_size,
                "num_classes": FLAGS.num_classes,
                axis: value,
            }
            points.append(sweep_point(Shape(**sizes)))
        print_sweep(axis, points)
        results[axis] = points
    return results


# End to end: the training loop of rbf_tf.training against its isolated step.


class InterleavedStep:
    """A `log` for `training.train_network` that times the isolated step.

    `train_network` calls its `log` between steps every `progress_seconds`,
    with a line "<name>: epoch <e>/<E> step <s>/<S> loss <l>". Each call here
    runs `steps_per_call` isolated steps on one fixed batch and times them, so
    that the loop and the isolated step are timed in the same stretches of
    machine load. The step times of epoch e are kept in `step_seconds[e]` and
    the time spent here during it in `spent[e]`, to be taken out of that
    epoch's time; `marks[e]` holds (steps done, time of the call, time spent
    here before it) for each call, which gives the loop's rate inside the
    epoch, away from its ends. While this runs, the input pipeline can
    prefetch a few batches ahead, which favours the loop slightly.
    """

    PROGRESS = re.compile(r"epoch (\d+)/\d+ step (\d+)/\d+")

    def __init__(self, step, images, labels, steps_per_call: int):
        self.step = step
        self.images = images
        self.labels = labels
        self.steps_per_call = steps_per_call
        self.step_seconds: Dict[int, List[float]] = collections.defaultdict(list)
        self.spent: Dict[int, float] = collections.defaultdict(float)
        self.marks: Dict[int, List] = collections.defaultdict(list)

    def loop_examples_per_second(self, epoch: int, batch_size: int) -> float:
        """Training-loop throughput between the first and last calls in `epoch`."""
        if len(self.marks[epoch]) < 2:
            return float("nan")
        done0, time0, spent0 = self.marks[epoch][0]
        done1, time1, spent1 = self.marks[epoch][-1]
        return (done1 - done0) * batch_size / (time1 - time0 - (spent1 - spent0))

    def __call__(self, message: str) -> None:
        match = self.PROGRESS.search(message)
        if match is None:
            return  # Not inside an epoch.
        epoch = int(match.group(1))
        entered = time.perf_counter()
        self.marks[epoch].append((int(match.group(2)), entered, self.spent[epoch]))
        for _ in range(self.steps_per_call):
            start = time.perf_counter()
            float(self.step(self.images, self.labels).numpy())
            self.step_seconds[epoch].append(time.perf_counter() - start)
        self.spent[epoch] += time.perf_counter() - entered


def end_to_end_network(data, layer: str, jit_compile: bool) -> Dict:
    """Trains one network through `train_network`, timing its step in between."""
    config = training.NetworkConfig(
        layer=layer,
        units=FLAGS.units,
        epochs=FLAGS.end_to_end_epochs,
        batch_size=FLAGS.batch_size,
        jit_compile=jit_compile,
        seed=FLAGS.seed,
    )
    # The isolated step: a second copy of the same network, optimiser groups
    # and compiled step that train_network builds, on one fixed MNIST batch.
    model = training.build_network(
        config, data.train_images, data.train_labels, data.num_classes
    )
    step = training.make_train_step(
        model, training.make_optimizers(config, model), jit_compile=jit_compile
    )
    images = tf.constant(data.train_images[: FLAGS.batch_size])
    labels = tf.constant(data.train_labels[: FLAGS.batch_size])
    for _ in range(FLAGS.warmup):
        step(images, labels)
    isolated = InterleavedStep(step, images, labels, steps_per_call=3)

    record = training.train_network(
        config,
        data.train_images,
        data.train_labels,
        data.test_images,
        data.test_labels,
        log=isolated,
        progress_seconds=0.25,
    )
    # Compare the epochs after the first, which pays for tracing and compiling.
    epochs = record["epochs"][1:]
    step_seconds = [t for e in epochs for t in isolated.step_seconds[e["epoch"]]]
    if not step_seconds:
        raise RuntimeError(
            "train_network logged no progress line of the form 'epoch <e>/<E> "
            "step <s>/<S>' inside the compared epochs, so the step was not timed."
        )
    loop_seconds = sum(e["seconds"] - isolated.spent[e["epoch"]] for e in epochs)
    epoch_rate = len(epochs) * len(data.train_images) / loop_seconds
    step_rate = FLAGS.batch_size / float(np.median(step_seconds))
    loop_rate = float(
        np.median(
            [
                isolated.loop_examples_per_second(e["epoch"], FLAGS.batch_size)
                for e in epochs
            ]
        )
    )
    return {
        "network": layer + ("+xla" if jit_compile else ""),
        "epochs_compared": [e["epoch"] for e in epochs],
        "epoch_examples_per_second": epoch_rate,
        "loop_examples_per_second": loop_rate,
        "step_examples_per_second": step_rate,
        "epoch_over_step": epoch_rate / step_rate,
        "loop_over_step": loop_rate / step_rate,
        "epoch_seconds_without_step_timing": loop_seconds,
        "isolated_steps_timed": len(step_seconds),
        "examples_per_second_by_epoch_as_logged": [
            e["examples_per_second"] for e in record["epochs"]
        ],
        "final_test_accuracy": record["final_test_accuracy"],
    }


def run_end_to_end() -> Dict:
    """Trains each network on MNIST and compares loop and step throughput.

    Compared are the epochs after the first, which pays for tracing and
    compilation. "epoch" is their whole time, "loop" the stretch between an
    epoch's first and last progress lines (the steady loop, without what
    happens at the epoch's ends), both with the time spent timing the isolated
    step taken out; "step" is the median isolated step timed in those epochs.
    """
    data = datasets.load_dataset("mnist")
    print(
        f"\nEnd to end: {FLAGS.end_to_end_epochs} MNIST epochs per network "
        f"through rbf_tf.training, {FLAGS.units} units, batch {FLAGS.batch_size};"
        f"\nthroughput (examples/s) of the epochs after the first against the "
        f"isolated step's, timed in between."
    )
    print(
        f"{'network':14s} {'epoch':>7s} {'loop':>7s} {'step':>7s} "
        f"{'epoch/step':>10s} {'loop/step':>9s}  target epoch/step >= "
        f"{END_TO_END_TARGET:.0%}"
    )
    results = []
    for jit_compile in XLA_MODES[FLAGS.xla]:
        for layer in ("gaussian", "dense"):
            r = end_to_end_network(data, layer, jit_compile)
            met = "met" if r["epoch_over_step"] >= END_TO_END_TARGET else "MISSED"
            print(
                f"{r['network']:14s} {r['epoch_examples_per_second']:7.0f} "
                f"{r['loop_examples_per_second']:7.0f} "
                f"{r['step_examples_per_second']:7.0f} "
                f"{r['epoch_over_step']:10.2f} {r['loop_over_step']:9.2f}  {met}"
            )
            results.append(r)
    return {"networks": results}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}.")
    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    # Every variant has its own step function built from the same code, which
    # TensorFlow's retracing warning mistakes for one function retracing.
    tf.get_logger().setLevel("ERROR")

    results = {
        "flags": {name: FLAGS[name].value for name in FLAG_NAMES},
        "environment": environment(),
    }
    started = time.perf_counter()
    if FLAGS.sweep:
        results["sweep"] = run_sweep()
    if FLAGS.end_to_end:
        results["end_to_end"] = run_end_to_end()
    if not (FLAGS.sweep or FLAGS.end_to_end):
        results["default"] = run_default()
    results["environment"]["load_average_end"] = list(os.getloadavg())
    results["environment"]["seconds"] = time.perf_counter() - started
    print(
        f"\n{results['environment']['seconds']:.0f} s; load average "
        f"{results['environment']['load_average_start'][0]:.1f} at the start, "
        f"{results['environment']['load_average_end'][0]:.1f} at the end "
        f"({os.cpu_count()} CPUs)."
    )
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(results, f, indent=2)
        print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
