"""Trains a Gaussian RBF network and/or a dense network on MNIST and compares them.

    python train.py --layer=gaussian        # the Gaussian network
    python train.py --layer=dense           # the dense network
    python train.py --layer=both            # both, same data, seed and budget

Progress goes to the terminal; results.json, TensorBoard summaries and
checkpoints go to --output_dir. Running the same command again resumes from
the last checkpoint. `python train.py --helpfull` lists every flag.
"""

import math
import os
import sys
import tempfile

from absl import app, flags, logging

# Keep TensorFlow's own messages off the terminal unless asked for.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FLAGS = flags.FLAGS

# Recipes for the Gaussian network. "tuned" trains well; "literal" is the
# exercise taken at its word: sigma = mean in-class distance, one learning rate.
RECIPES = {
    "tuned": dict(width_scale=0.4, learning_rate=2e-2, center_lr_scale=0.15,
                  width_lr_scale=0.15, schedule="cosine"),
    "literal": dict(width_scale=1.0, learning_rate=1e-3, center_lr_scale=1.0,
                    width_lr_scale=1.0, schedule="constant"),
}

flags.DEFINE_enum("layer", "both", ["gaussian", "dense", "both"],
                  "Which hidden layer to train; 'both' trains both and compares.")
flags.DEFINE_integer("units", 1000, "Hidden units of each network.", lower_bound=1)
flags.DEFINE_integer("epochs", 12, "Passes over the training set.", lower_bound=1)
flags.DEFINE_integer("batch_size", 128, "Examples per step.", lower_bound=1)
flags.DEFINE_enum("optimizer", "adam", ["adam", "sgd"],
                  "Optimiser of every variable group (SGD uses momentum 0.9).")
flags.DEFINE_float("learning_rate", 1e-3,
                   "Learning rate of the dense network.")
flags.DEFINE_enum("recipe", "tuned", sorted(RECIPES),
                  "Defaults of the Gaussian network's flags below: 'tuned' "
                  f"{RECIPES['tuned']}; 'literal' {RECIPES['literal']}. A flag "
                  "given explicitly wins over its recipe.")
flags.DEFINE_float("gaussian_learning_rate", None,
                   "Learning rate of the Gaussian network's readout (default: "
                   "from --recipe).")
flags.DEFINE_float("center_lr_scale", None,
                   "Learning rate of the centers mu relative to the Gaussian "
                   "learning rate (default: from --recipe).")
flags.DEFINE_float("width_lr_scale", None,
                   "Learning rate of sigma and w relative to the Gaussian "
                   "learning rate (default: from --recipe).")
flags.DEFINE_float("width_scale", None,
                   "Initial sigma = width_scale * the in-class distance (default: "
                   "from --recipe).")
flags.DEFINE_enum("schedule", None, ["constant", "cosine"],
                  "Learning-rate schedule over the epochs of the Gaussian "
                  "network (default: from --recipe).")
flags.DEFINE_enum("dense_schedule", "cosine", ["constant", "cosine"],
                  "Learning-rate schedule of the dense network.")
flags.DEFINE_integer("sigma_sample_size", 500,
                     "Samples per class used to estimate the in-class distance "
                     "(2 to 2000; memory about 8*s^2 bytes).", lower_bound=2,
                     upper_bound=2000)
flags.DEFINE_enum("center_init", "random", ["random", "kmeans", "class_balanced"],
                  "Initial Gaussian centers: random training samples, k-means "
                  "centers, or an equal number of samples per class.")
flags.DEFINE_enum("width_init", "in_class",
                  ["in_class", "per_class", "nearest_centers"],
                  "Initial Gaussian widths: one global in-class distance, the "
                  "in-class distance of each center's class, or the distance to "
                  "each center's nearest other centers.")
flags.DEFINE_integer("seed", 0, "Seed of data order and initialisation.",
                     lower_bound=0)
flags.DEFINE_list("seeds", None,
                  "Train each network once per seed (e.g. 0,1,2) and report mean "
                  "and standard deviation; overrides --seed.")
flags.DEFINE_boolean("match_params", False,
                     "Also train a dense network whose total parameter count "
                     "matches the Gaussian network's ('dense-params').")
flags.DEFINE_boolean("plots", True,
                     "Write PNG learning curves and center images to "
                     "<output_dir>/plots (needs matplotlib: pip install "
                     "'rbf_tf[plots]').")
flags.DEFINE_enum("dataset", "mnist", ["mnist", "fashion_mnist"], "Dataset.")
flags.DEFINE_string("data_dir", None,
                    "Directory with the four IDX files (default: the copy "
                    "shipped with rbf_tf for MNIST, /usr/share/datasets/"
                    "fashion-mnist for Fashion-MNIST).")
flags.DEFINE_string("output_dir", None,
                    "Where results.json, summaries and checkpoints go "
                    "(default: runs/<dataset>).")
flags.DEFINE_integer("train_examples", 0,
                     "Train on only this many training examples (0 = all).",
                     lower_bound=0)
flags.DEFINE_boolean("jit_compile", True,
                     "Compile the training step with XLA (measured faster for both "
                     "networks; see BUILD_NOTES.md).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "How training is spread: 'default' one device; 'mirrored' "
                  "every local GPU (or --cpu_devices logical CPUs); "
                  "'multi_worker' one process per machine, the cluster given by "
                  "the TF_CONFIG environment variable (see README).")
flags.DEFINE_integer("cpu_devices", 0,
                     "With --strategy=mirrored, replicate over this many logical "
                     "CPU devices instead of the GPUs (0 = the GPUs).",
                     lower_bound=0)
flags.DEFINE_integer("checkpoint_every_steps", 0,
                     "Also checkpoint every N steps inside an epoch (0 = only "
                     "at epoch ends).", lower_bound=0)
flags.DEFINE_boolean("restart", False,
                     "Start afresh, deleting an earlier run's checkpoints and "
                     "results in --output_dir instead of resuming.")
flags.DEFINE_boolean("overwrite", False,
                     "Write into a non-empty --output_dir that train.py did not "
                     "create.")
flags.DEFINE_string("export_dir", None,
                    "After training, export each network as a SavedModel for "
                    "serving, to <export_dir>/<network>. A non-empty directory "
                    "is refused before training starts unless --overwrite, which "
                    "replaces the exports of this run's networks.")


@flags.validator("seeds", "--seeds must be distinct non-negative integers, "
                 "comma-separated, e.g. 0,1,2.")
def _check_seeds(value):
    if value is None:
        return True
    return all(v.strip().isdigit() for v in value) and len(set(
        int(v) for v in value)) == len(value)


def _positive_finite(value):
    return value is None or (value > 0 and math.isfinite(value))


for _name in ("learning_rate", "gaussian_learning_rate", "center_lr_scale",
              "width_lr_scale", "width_scale"):
    flags.register_validator(
        _name, _positive_finite, f"--{_name} must be a positive finite number.")


@flags.multi_flags_validator(
    ["strategy", "cpu_devices"],
    "--cpu_devices needs --strategy=mirrored; drop it or pass --strategy=mirrored.")
def _check_cpu_devices(values):
    return values["cpu_devices"] == 0 or values["strategy"] == "mirrored"


def parse_flags(argv):
    """Parses flags; a bad value ends the program with one line and status 1."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        sys.exit(1)
    except SystemExit as e:
        # absl ends --help and --helpfull with status 1; asking is no failure.
        sys.exit(0 if e.code == 1 else e.code)


def import_tensorflow_quietly():
    """Imports TensorFlow with its C++ start-up messages held back.

    TensorFlow prints a screenful of start-up notes (CPU features, missing CUDA
    drivers) to stderr before its log level applies. They go to a temporary
    file instead, which is shown only if the import fails. Imported here, not at
    the top, so that --help does not wait for TensorFlow.
    """
    with tempfile.TemporaryFile() as captured:
        stderr = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # Device discovery also prints.
        except BaseException:
            os.dup2(stderr, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(stderr, 2)
            os.close(stderr)
    tf.get_logger().setLevel("ERROR")
    return tf


def gaussian_settings():
    """The Gaussian network's fields: its recipe, overridden by explicit flags."""
    recipe = dict(RECIPES[FLAGS.recipe])
    explicit = {
        "learning_rate": FLAGS.gaussian_learning_rate,
        "center_lr_scale": FLAGS.center_lr_scale,
        "width_lr_scale": FLAGS.width_lr_scale,
        "width_scale": FLAGS.width_scale,
        "schedule": FLAGS.schedule,
    }
    recipe.update({k: v for k, v in explicit.items() if v is not None})
    recipe.update(center_init=FLAGS.center_init, width_init=FLAGS.width_init)
    return recipe


def main(argv):
    if len(argv) > 1:
        print(f"train.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 1

    tf = import_tensorflow_quietly()
    from rbf_tf import datasets, distribute, experiment, export

    logging.set_verbosity(logging.WARNING)
    tf.config.experimental.enable_op_determinism()
    try:
        # Before any other TensorFlow operation: devices are fixed at start-up.
        strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.cpu_devices)
    except (ValueError, RuntimeError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 1
    chief = distribute.is_chief(strategy)
    layers = ["gaussian", "dense"] if FLAGS.layer == "both" else [FLAGS.layer]
    output_dir = FLAGS.output_dir or os.path.join("runs", FLAGS.dataset)
    settings = {name: FLAGS[name].value for name in sorted(FLAGS_OF_A_RUN)}

    try:
        if FLAGS.export_dir and chief:
            export.check_networks_export(FLAGS.export_dir, output_dir,
                                         FLAGS.overwrite, "pass --overwrite")
        data = datasets.load_dataset(FLAGS.dataset, FLAGS.data_dir)
        if FLAGS.train_examples:
            data = datasets.take_examples(data, FLAGS.train_examples, FLAGS.seed)
        base = dict(units=FLAGS.units, epochs=FLAGS.epochs,
                    batch_size=FLAGS.batch_size, optimizer=FLAGS.optimizer,
                    learning_rate=FLAGS.learning_rate,
                    schedule=FLAGS.dense_schedule,
                    sigma_sample_size=FLAGS.sigma_sample_size,
                    jit_compile=FLAGS.jit_compile,
                    checkpoint_every_steps=FLAGS.checkpoint_every_steps)
        seeds = [int(v) for v in FLAGS.seeds] if FLAGS.seeds else [FLAGS.seed]
        networks = experiment.configs_for(
            layers, seeds, base, gaussian_settings(),
            match_params=FLAGS.match_params and "gaussian" in layers,
            input_dim=data.train_images.shape[1],
            num_classes=data.num_classes)
        resuming = chief and experiment.prepare_output_dir(
            output_dir, settings, restart=FLAGS.restart, overwrite=FLAGS.overwrite)
    except (ValueError, OSError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        distribute.all_agree(strategy, False)
        return 1
    # Workers start together, and only once the chief has prepared the folder.
    if not distribute.all_agree(strategy, True):
        print("train.py: error: another worker could not start; see its output.",
              file=sys.stderr)
        return 1

    print(f"{data.name}: {len(data.train_images)} training and "
          f"{len(data.test_images)} test examples; output in {output_dir}"
          + (" (resuming)" if resuming else ""), flush=True)
    task = "" if chief else distribute.task_name(strategy) + ": "
    try:
        results = experiment.run_experiment(
            networks, data, output_dir,
            log=lambda line: print(task + line, flush=True), flags=settings,
            strategy=strategy)
    except (ValueError, OSError, FloatingPointError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ntrain.py: interrupted; run the same command again to resume from "
              "the last checkpoint.", file=sys.stderr)
        return 130
    if not chief:
        print(f"{task}done; the chief writes results, plots and exports.")
        return 0
    print()
    print(experiment.format_table(results["summary"]))
    print(f"\nresults: {os.path.join(output_dir, experiment.RESULTS_FILE)}")
    if FLAGS.plots:
        from rbf_tf import plots

        written = plots.write_plots(results, output_dir)
        if written:
            print("plots: " + ", ".join(written))
        else:
            print("plots: skipped, matplotlib is not installed "
                  "(pip install 'rbf_tf[plots]' to get them)")
    if FLAGS.export_dir:
        try:
            export.export_networks(networks, output_dir, data, FLAGS.export_dir,
                                   FLAGS.overwrite, log=lambda line: print(line))
        except (ValueError, OSError) as e:
            print(f"train.py: error: {e}", file=sys.stderr)
            return 1
    return 0


# Flags that define a run: a folder holding a run with other values of these is
# not resumed. Flags about where files go, how often to save and how training is
# spread over devices are left out: a run resumes under another strategy.
FLAGS_OF_A_RUN = (
    "layer", "units", "epochs", "batch_size", "optimizer", "learning_rate",
    "recipe", "gaussian_learning_rate", "center_lr_scale", "width_lr_scale",
    "width_scale", "schedule", "dense_schedule", "sigma_sample_size", "seed",
    "seeds", "match_params", "center_init", "width_init",
    "dataset", "train_examples", "jit_compile",
)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
