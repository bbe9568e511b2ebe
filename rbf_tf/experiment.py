"""The comparison experiment behind `train.py`: several networks, one report.

An experiment trains a list of named networks (`NetworkConfig`s) on one
dataset, each in its own folder under the output directory, and writes
`results.json` there. Running the same experiment again resumes where the
last one stopped; a folder that was not written by rbf_tf is never touched
without permission.
"""

import glob
import json
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from rbf_tf import distribute, training
from rbf_tf.training import NetworkConfig, write_atomically

RUN_FILE = "run.json"
RESULTS_FILE = "results.json"


class OutputDirError(ValueError):
    """The output directory cannot be used as asked."""


def prepare_output_dir(path: str, settings: Dict, restart: bool = False,
                       overwrite: bool = False) -> bool:
    """Makes `path` ready for a run of `settings`; returns True when resuming.

    A new or empty folder is created and stamped with `settings` (run.json).
    A folder stamped with the same settings is resumed. A stamped folder with
    other settings is refused, naming the differences. A non-empty folder
    without a stamp is refused unless `overwrite`. `restart` deletes what an
    earlier run wrote there (and nothing else) and starts afresh.

    Raises:
      OutputDirError: when the folder cannot be used, saying why and what to do.
    """
    run_file = os.path.join(path, RUN_FILE)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputDirError(f"output path {path} exists and is not a directory.")
    entries = os.listdir(path) if os.path.isdir(path) else []
    if os.path.exists(run_file) and restart:
        remove_run_files(path)
    elif os.path.exists(run_file):
        try:
            with open(run_file) as f:
                previous = json.load(f)
        except (OSError, ValueError) as e:
            raise OutputDirError(
                f"cannot read {run_file} ({e}); pass --restart to start afresh "
                f"there or choose another --output_dir.") from None
        if previous == settings:
            return True
        changed = sorted(
            key for key in set(previous) | set(settings)
            if previous.get(key) != settings.get(key))
        details = ", ".join(
            f"{key}: {previous.get(key)!r} then, {settings.get(key)!r} now"
            for key in changed)
        raise OutputDirError(
            f"output directory {path} holds a run with other settings ({details}); "
            f"pass --restart to start afresh there or choose another --output_dir.")
    elif entries and not overwrite:
        raise OutputDirError(
            f"output directory {path} is not empty and was not written by "
            f"train.py ({len(entries)} entries, e.g. {sorted(entries)[0]!r}); "
            f"choose another --output_dir or pass --overwrite to write beside them.")
    os.makedirs(path, exist_ok=True)
    write_atomically(run_file, json.dumps(settings, indent=2, sort_keys=True))
    return False


# What train.py writes in a network's folder, by subfolder, as file patterns.
NETWORK_FILES = {"checkpoints": ("checkpoint", "ckpt-*"),
                 "summaries": ("events.out.tfevents.*",)}
PLOT_FILES = ("learning_curves.png", "*_centers.png")


def remove_run_files(path: str) -> None:
    """Deletes the files an earlier run wrote in `path`, and nothing else.

    Only names that train.py writes are removed: run.json, results.json, the
    plots, and each network's checkpoint and summary files; folders are removed
    when that leaves them empty. Anything else a user put there stays.
    """

    def remove(folder, patterns):
        if not os.path.isdir(folder):
            return
        for pattern in patterns:
            for target in glob.glob(os.path.join(folder, pattern)):
                if os.path.isfile(target):
                    os.remove(target)
        if not os.listdir(folder):
            os.rmdir(folder)

    for name in (RUN_FILE, RESULTS_FILE):
        if os.path.isfile(os.path.join(path, name)):
            os.remove(os.path.join(path, name))
    remove(os.path.join(path, "plots"), PLOT_FILES)
    for entry in os.listdir(path):
        network = os.path.join(path, entry)
        if not os.path.isdir(network) or entry == "plots":
            continue
        for folder, patterns in NETWORK_FILES.items():
            remove(os.path.join(network, folder), patterns)
        if not os.listdir(network):
            os.rmdir(network)


def run_experiment(
    networks: Sequence[Tuple[str, NetworkConfig]],
    data,
    output_dir: Optional[str],
    log: Callable[[str], None] = lambda message: None,
    flags: Optional[Dict] = None,
    strategy=None,
) -> Dict:
    """Trains each named network on `data` and writes `results.json`.

    Args:
      networks: (name, config) pairs; each trains in `output_dir/name`.
      data: an object with train_images, train_labels, test_images,
        test_labels (see `rbf_tf.datasets.Dataset`).
      output_dir: prepared with `prepare_output_dir`, or None for no files.
      log: receives progress lines.
      flags: recorded in every run's record (the command-line settings).
      strategy: a `tf.distribute.Strategy` to train under, or None for one
        device. Every worker trains every network in step with the others and
        reads checkpoints from `output_dir`; only the chief writes there.

    Returns:
      {"runs": [record, ...], "summary": {...}} as written to results.json,
      each record as from `training.train_network` plus "name" and "flags".
    """
    chief = distribute.is_chief(strategy)
    replicas = "" if strategy is None else (
        f", {strategy.num_replicas_in_sync} replicas")
    runs = []
    for name, config in networks:
        log(f"{name}: training {config.layer} network, {config.units} units, "
            f"{config.epochs} epochs, seed {config.seed}{replicas}")
        network_dir = os.path.join(output_dir, name) if output_dir else None
        record = training.train_network(
            config, data.train_images, data.train_labels, data.test_images,
            data.test_labels, output_dir=network_dir, log=log, name=name,
            strategy=strategy, num_classes=getattr(data, "num_classes", None))
        record = {"name": name, **record, "flags": dict(flags or {})}
        runs.append(record)
        results = {"runs": runs, "summary": summarize_runs(runs)}
        if output_dir and chief:
            write_atomically(os.path.join(output_dir, RESULTS_FILE),
                             json.dumps(results, indent=2))
    return results


def group_key(record: Dict) -> str:
    """Runs that differ only by seed share a group: the name without its seed."""
    return record["name"].split("-seed")[0]


def summarize_runs(runs: List[Dict]) -> Dict:
    """Mean and standard deviation of each figure over the seeds of a group."""
    figures = ("final_test_accuracy", "best_test_accuracy", "seconds_to_target",
               "epochs_to_target", "seconds_per_epoch")
    groups: Dict[str, List[Dict]] = {}
    for record in runs:
        groups.setdefault(group_key(record), []).append(record)
    summary = {}
    for key, records in groups.items():
        entry = {"layer": records[0]["layer"], "units": records[0]["units"],
                 "params": records[0]["params"], "seeds": len(records)}
        for figure in figures:
            values = [r[figure] for r in records if r[figure] is not None]
            entry[figure] = {
                "mean": float(np.mean(values)) if values else None,
                "std": float(np.std(values)) if values else None,
                "reached": len(values),
            }
        summary[key] = entry
    return summary


def _cell(entry: Dict, figure: str, scale: float = 1.0, digits: int = 2,
          unit: str = "") -> str:
    """One figure of a summary entry: mean, and spread when there are seeds."""
    stats, seeds = entry[figure], entry["seeds"]
    if stats["mean"] is None:
        return "never"
    text = f"{stats['mean'] * scale:.{digits}f}{unit}"
    if seeds > 1:
        text += f" ±{stats['std'] * scale:.{digits}f}"
        if stats["reached"] < seeds:
            text += f" ({stats['reached']}/{seeds})"
    return text


def format_table(summary: Dict) -> str:
    """The comparison table printed at the end of train.py."""
    header = ("network", "hidden", "readout", "total", "best acc", "final acc",
              "s to 97%", "ep to 97%", "s/epoch")
    rows = [header]
    for key, entry in summary.items():
        params = entry["params"]
        rows.append((
            key, f"{params['hidden']:,}", f"{params['readout']:,}",
            f"{params['total']:,}", _cell(entry, "best_test_accuracy", 100, 2, "%"),
            _cell(entry, "final_test_accuracy", 100, 2, "%"),
            _cell(entry, "seconds_to_target", 1, 1),
            _cell(entry, "epochs_to_target", 1, 1),
            _cell(entry, "seconds_per_epoch", 1, 1)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def matched_dense_units(gaussian_units: int, input_dim: int, num_classes: int) -> int:
    """Dense width whose network has the parameter count closest to a Gaussian one.

    Gaussian total: n*m + 2m + m*k + k; dense total: n*d + d + d*k + k.
    """
    gaussian_total = gaussian_units * (input_dim + 2 + num_classes)
    return max(1, int(round(gaussian_total / (input_dim + 1 + num_classes))))


def configs_for(layers: Sequence[str], seeds: Sequence[int], base: Dict,
                gaussian: Dict, match_params: bool = False, input_dim: int = 784,
                num_classes: int = 10) -> List[Tuple[str, NetworkConfig]]:
    """The named networks of an experiment.

    Args:
      layers: "gaussian" and/or "dense".
      seeds: one network of each layer per seed; names get "-seed{k}" when
        there is more than one seed.
      base: NetworkConfig fields shared by all networks.
      gaussian: fields that apply to Gaussian networks only.
      match_params: also train a dense network whose total parameter count
        matches the Gaussian one ("dense-params").
    """
    networks = []
    for seed in seeds:
        suffix = f"-seed{seed}" if len(seeds) > 1 else ""
        for layer in layers:
            fields = {**base, "layer": layer, "seed": seed}
            if layer == "gaussian":
                fields.update(gaussian)
            networks.append((layer + suffix, NetworkConfig(**fields)))
        if match_params:
            units = matched_dense_units(base["units"], input_dim, num_classes)
            fields = {**base, "layer": "dense", "seed": seed, "units": units}
            networks.append(("dense-params" + suffix, NetworkConfig(**fields)))
    return networks
