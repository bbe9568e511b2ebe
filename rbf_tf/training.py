"""The training loop shared by the Gaussian and the dense network.

One compiled step (`make_train_step`) serves both networks: softmax
cross-entropy, `tf.GradientTape`, and an `rbf_tf` optimiser per variable group.
`train_network` runs it for a number of epochs with evaluation, TensorBoard
summaries, checkpoints that a killed run resumes from, and a results record.
Everything here is silent unless a `log` callable is passed in.
"""

import contextlib
import dataclasses
import glob
import json
import math
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from rbf_tf import datasets, distribute, initializers
from rbf_tf.classifier import Classifier
from rbf_tf.dense import Dense
from rbf_tf.gaussian import GaussianRBF
from rbf_tf.optimizers import Optimizer, make_optimizer

LAYERS = ("gaussian", "dense")
SCHEDULES = ("constant", "cosine")
TARGET_ACCURACY = 0.97

Groups = Sequence[Tuple[Optimizer, Sequence[tf.Variable]]]


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Everything that decides how one network is built and trained.

    Two runs with equal configs and data give equal results; a checkpoint is
    only resumed by a run with an equal config.
    """

    layer: str = "gaussian"
    units: int = 1000
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    center_lr_scale: float = 1.0  # Gaussian mu learns at learning_rate * this.
    width_lr_scale: float = 1.0  # Gaussian sigma and w learn at learning_rate * this.
    schedule: str = "constant"
    width_scale: float = 1.0  # sigma = width_scale * initial width.
    sigma_sample_size: int = 500
    center_init: str = "random"
    width_init: str = "in_class"
    seed: int = 0
    jit_compile: bool = False
    checkpoint_every_steps: int = 0

    def __post_init__(self):
        if self.layer not in LAYERS:
            raise ValueError(f"layer must be one of {LAYERS}, got {self.layer!r}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule must be one of {SCHEDULES}, got {self.schedule!r}."
            )
        for name in ("units", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        for name in ("learning_rate", "center_lr_scale", "width_lr_scale",
                     "width_scale"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be positive and finite, got {value}.")


class DivergedError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


class CheckpointError(ValueError):
    """A checkpoint in the output directory cannot be restored."""


# The loss and the steps.


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Mean softmax cross-entropy of [B, k] logits against [B] integer labels."""
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=logits
    )
    return tf.reduce_mean(losses)


def as_groups(model: tf.Module, optimizer: Union[Optimizer, Groups]) -> Groups:
    """Returns [(optimiser, variables), ...]; one optimiser means all variables."""
    if isinstance(optimizer, Optimizer):
        return [(optimizer, list(model.trainable_variables))]
    groups = [(opt, list(variables)) for opt, variables in optimizer]
    grouped = {v.ref() for _, variables in groups for v in variables}
    missing = [v.name for v in model.trainable_variables if v.ref() not in grouped]
    if missing:
        raise ValueError(f"variables without an optimiser: {missing}.")
    return groups


def make_train_step(
    model: tf.Module,
    optimizer: Union[Optimizer, Groups],
    jit_compile: bool = False,
    strategy: Optional[tf.distribute.Strategy] = None,
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Builds the compiled training step shared by every network.

    Args:
      model: maps [B, n] images to [B, k] logits, e.g. a `Classifier`.
      optimizer: one `Optimizer` for all trainable variables, or a sequence of
        (optimizer, variables) pairs covering them, one learning rate per group.
      jit_compile: compile the step with XLA.
      strategy: None for one device; else the `tf.distribute.Strategy` under
        whose `scope()` the model and optimisers were made, and the step is
        `make_replicated_train_step`'s.

    Returns:
      A `tf.function` step(images [B, n], labels [B] int) -> scalar mean loss,
      which updates the model's variables in place.
    """
    if strategy is not None:
        return make_replicated_train_step(model, optimizer, strategy, jit_compile)
    groups = as_groups(model, optimizer)
    for opt, variables in groups:
        opt.build(variables)
    variables = [v for _, group in groups for v in group]

    @tf.function(jit_compile=jit_compile)
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = cross_entropy(model(images), labels)
        gradients = tape.gradient(loss, variables)
        start = 0
        for opt, group in groups:
            opt.apply(gradients[start:start + len(group)], group)
            start += len(group)
        return loss

    return step


def make_replicated_train_step(
    model: tf.Module,
    optimizer: Union[Optimizer, Groups],
    strategy: tf.distribute.Strategy,
    jit_compile: bool = False,
) -> Callable:
    """The training step of `make_train_step`, run on every replica of `strategy`.

    Each replica takes its share of a global batch and divides its summed
    per-example losses by the size of the whole global batch (found by an
    all-reduce, so a smaller last batch, or a replica with no examples, is
    scaled right). The gradients are summed over the replicas, which gives the
    gradient of the global batch's mean loss, and every replica then applies
    the same update to its copy of the variables: the result is that of one
    device training on the global batch, up to float rounding.

    Args:
      model: as for `make_train_step`, made under `strategy.scope()`.
      optimizer: as for `make_train_step`, made under `strategy.scope()`; the
        slots are created here, under the same scope.
      strategy: a `MirroredStrategy` or `MultiWorkerMirroredStrategy`.
      jit_compile: compile each replica's forward and backward pass with XLA.

    Returns:
      A `tf.function` step(images, labels) -> scalar mean loss over the global
      batch, taking per-replica values such as the elements of
      `replica_batches`.

    Raises:
      ValueError: if a model or optimiser variable was made outside
        `strategy.scope()`.
    """
    groups = as_groups(model, optimizer)
    with strategy.scope():
        for opt, variables in groups:
            opt.build(variables)
    variables = [v for _, group in groups for v in group]
    owned = list(model.variables) + [v for opt, _ in groups for v in opt.variables]
    in_scope = strategy.extended.variable_created_in_scope
    strays = [v.name for v in owned if not in_scope(v)]
    if strays:
        raise ValueError(
            f"model and optimiser variables must be made under strategy.scope(), "
            f"got {len(strays)} made outside it, e.g. {strays[0]!r}.")
    sum_ = tf.distribute.ReduceOp.SUM

    def gradients_of(images, labels, global_count):
        with tf.GradientTape() as tape:
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(labels, tf.int32), logits=model(images))  # [b]
            loss = tf.reduce_sum(losses) / tf.cast(global_count, losses.dtype)
        return loss, tape.gradient(loss, variables)

    if jit_compile:
        gradients_of = tf.function(gradients_of, jit_compile=True)

    def apply_gradients(unused_anchor, gradients):
        # Runs once per local replica, in the strategy's update context, where
        # every read and assignment of a mirrored variable (slots and step
        # counters included) goes to that replica's copy.
        start = 0
        for opt, group in groups:
            opt.apply(gradients[start:start + len(group)], group)
            start += len(group)
        return tf.constant(0)

    def replica_step(images, labels):
        context = tf.distribute.get_replica_context()
        global_count = context.all_reduce(sum_, tf.shape(labels)[0])
        loss, gradients = gradients_of(images, labels, global_count)
        gradients = context.all_reduce(sum_, gradients)
        strategy.extended.update(groups[0][0].step, apply_gradients,
                                 args=(gradients,), group=False)
        return loss

    @tf.function
    def step(images, labels):
        losses = strategy.run(replica_step, args=(images, labels))
        return strategy.reduce(sum_, losses, axis=None)

    return step


def replica_batches(strategy: tf.distribute.Strategy, images: tf.Tensor,
                    labels: tf.Tensor, batch_size: int, seed: int, epoch: int,
                    start_step: int = 0,
                    num_epochs: int = 1) -> tf.distribute.DistributedDataset:
    """The batches of `datasets.make_dataset`, split over the replicas.

    Every worker builds the same global batches, in the order fixed by (seed,
    epoch), so resuming at `start_step` works as on one device. Each global
    batch of b examples is cut into `strategy.num_replicas_in_sync` contiguous
    pieces whose sizes differ by at most one (a piece may be empty when b is
    below the number of replicas); each worker feeds the pieces of its own
    replicas.

    Args:
      strategy: the strategy that runs the step.
      images: [N, n] float tensor; labels: [N] integer tensor.
      batch_size: examples per global batch; the last one may be smaller.
      seed, epoch, start_step, num_epochs: as for `datasets.make_dataset`.

    Returns:
      A distributed dataset of per-replica ([b_r, n], [b_r]) pieces.
    """
    replicas = strategy.num_replicas_in_sync

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local
        batches = datasets.make_dataset(
            images, labels, batch_size, shuffle=True, seed=seed, epoch=epoch,
            start_step=start_step, num_epochs=num_epochs)

        def pieces(batch_images, batch_labels):
            bounds = tf.range(replicas + 1) * tf.shape(batch_labels)[0] // replicas
            starts = bounds[first:first + local]
            ends = bounds[first + 1:first + local + 1]
            return tf.data.Dataset.from_tensor_slices((starts, ends)).map(
                lambda start, end: (batch_images[start:end], batch_labels[start:end]))

        return batches.flat_map(pieces)

    return strategy.distribute_datasets_from_function(dataset_fn)


def make_eval_step(model: tf.Module) -> Callable:
    """Returns a `tf.function` (images, labels) -> (summed loss, correct count)."""

    @tf.function
    def eval_step(images, labels):
        logits = model(images)
        labels = tf.cast(labels, tf.int64)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits
        )
        correct = tf.equal(tf.argmax(logits, axis=1), labels)
        return tf.reduce_sum(losses), tf.reduce_sum(tf.cast(correct, tf.int64))

    return eval_step


def evaluate(eval_step: Callable, images: np.ndarray, labels: np.ndarray,
             batch_size: int = 1000) -> Tuple[float, float]:
    """Mean loss and accuracy of `eval_step` (from `make_eval_step`) on a set."""
    total_loss, total_correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        loss, correct = eval_step(images[start:start + batch_size],
                                  labels[start:start + batch_size])
        total_loss += float(loss)
        total_correct += int(correct)
    return total_loss / len(images), total_correct / len(images)


# Building a network.


def build_network(config: NetworkConfig, images: np.ndarray, labels: np.ndarray,
                  num_classes: int = 10, dtype=tf.float32,
                  from_data: bool = True) -> Classifier:
    """Builds the classifier of `config`, initialised from the training data.

    A Gaussian hidden layer takes its centers and widths from `images` (see
    `rbf_tf.initializers`), scaled by `config.width_scale`, and w = 1; a dense
    one is initialised at random. Seeded by `config.seed`. With `from_data`
    False the Gaussian layer keeps its default initial values instead, which
    is enough when a checkpoint is about to overwrite them (k-means, say, is
    not run again).
    """
    input_dim = images.shape[1]
    if config.layer == "gaussian":
        mu = sigma = None
        if from_data:
            mu, sigma = initial_centers_and_widths(config, images, labels)
            sigma = config.width_scale * sigma
        hidden = GaussianRBF(input_dim, config.units, mu=mu, sigma=sigma, w=1.0,
                             seed=config.seed, dtype=dtype, name="gaussian")
    else:
        hidden = Dense(input_dim, config.units, activation="relu",
                       seed=config.seed, dtype=dtype, name="dense")
    return Classifier(hidden, num_classes, seed=config.seed, name="classifier")


def initial_centers_and_widths(config: NetworkConfig, images: np.ndarray,
                               labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Initial mu [n, units] and sigma [units] of the configured methods."""
    sample_size = min(config.sigma_sample_size, len(images))
    centers = initializers.make_centers(
        config.center_init, images, labels, config.units, config.seed)
    sigma = initializers.make_widths(
        config.width_init, images, labels, centers, config.seed,
        sample_size=sample_size)
    return centers.mu, np.broadcast_to(sigma, (config.units,))


def make_optimizers(config: NetworkConfig, model: Classifier) -> Groups:
    """One optimiser per variable group, each with its own learning rate.

    Gaussian networks have three groups: centers (mu), widths and weights
    (sigma, w), and the readout; dense networks have one.
    """
    if config.layer == "dense":
        return [(make_optimizer(config.optimizer, config.learning_rate),
                 list(model.trainable_variables))]
    hidden, rate = model.hidden, config.learning_rate
    return [
        (make_optimizer(config.optimizer, rate * config.center_lr_scale), [hidden.mu]),
        (make_optimizer(config.optimizer, rate * config.width_lr_scale),
         [hidden.sigma, hidden.w]),
        (make_optimizer(config.optimizer, rate),
         list(model.readout.trainable_variables)),
    ]


def learning_rate_factor(config: NetworkConfig, epoch: int) -> float:
    """Multiplier of every base learning rate during `epoch` (0-based)."""
    if config.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))
    return 1.0


# Files.


def write_atomically(path: str, text: str) -> None:
    """Writes `text` to `path` so that a reader never sees a partial file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def image_grid_side(input_dim: int) -> Optional[int]:
    side = int(round(math.sqrt(input_dim)))
    return side if side * side == input_dim else None


def center_images(mu: np.ndarray, count: int = 64) -> Optional[np.ndarray]:
    """The first `count` centers as [count, side, side, 1] images in [0, 1]."""
    side = image_grid_side(mu.shape[0])
    if side is None:
        return None
    centers = mu[:, :count].T.reshape(-1, side, side, 1)
    low = centers.min(axis=(1, 2, 3), keepdims=True)
    high = centers.max(axis=(1, 2, 3), keepdims=True)
    return (centers - low) / np.maximum(high - low, 1e-12)


# The loop.


class Progress(tf.Module):
    """Training progress kept in the checkpoint beside model and optimisers."""

    def __init__(self):
        super().__init__(name="progress")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)  # done
        self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.loss_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.epoch_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.history = tf.Variable("[]", dtype=tf.string, trainable=False)


def train_network(
    config: NetworkConfig,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    output_dir: Optional[str] = None,
    log: Callable[[str], None] = lambda message: None,
    progress_seconds: float = 10.0,
    stop_after_steps: Optional[int] = None,
    name: Optional[str] = None,
    strategy: Optional[tf.distribute.Strategy] = None,
    num_classes: Optional[int] = None,
) -> Dict:
    """Trains one network and returns its record.

    Args:
      config: the network and its training.
      train_images, test_images: [N, n] float32 arrays in [0, 1].
      train_labels, test_labels: [N] integer arrays.
      output_dir: where checkpoints and TensorBoard summaries go; when it holds
        a checkpoint of this config, training resumes from it. None: no files.
      log: receives one line of progress at a time.
      progress_seconds: interval of progress lines inside an epoch.
      stop_after_steps: stop (after checkpointing) once this many steps have
        run in this call; for tests of resuming.
      name: names the network in log lines; default `config.layer`.
      num_classes: number of logits; default one more than the largest label
        in the training or test set.
      strategy: None trains on one device. A `tf.distribute.Strategy` (see
        `rbf_tf.distribute.make_strategy`) makes the model and optimisers under
        its scope and splits every batch over its replicas, with the same
        results up to float rounding. Under a multi-worker strategy every
        worker calls this with the same arguments; all read checkpoints from
        `output_dir` (so resuming needs a folder all workers see), but only
        the chief writes there: the others save into a temporary folder that
        is removed at once, and write no summaries.

    Returns:
      A dict with "layer", "units", "params" {"hidden", "readout", "total"},
      "epochs" (one {"epoch", "train_loss", "test_loss", "test_accuracy",
      "seconds", "examples_per_second"} per epoch), "final_test_accuracy",
      "best_test_accuracy", "seconds_to_target", "epochs_to_target",
      "seconds_per_epoch" and "config".

    Raises:
      RuntimeError: if called inside a strategy's scope.
    """
    if tf.distribute.has_strategy():
        raise RuntimeError(
            "train_network must be called outside strategy.scope(), with the "
            "strategy passed as strategy=, but it was called inside a scope.")
    name = name or config.layer
    if num_classes is None:
        num_classes = int(max(np.max(train_labels), np.max(test_labels))) + 1
    # Model and optimisers are replicated; Progress, host-side bookkeeping, is
    # made below, outside the scope (MultiWorkerMirroredStrategy cannot
    # replicate its string variable).
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = build_network(config, train_images, train_labels,
                              num_classes=num_classes)
        groups = make_optimizers(config, model)
        step = make_train_step(model, groups, jit_compile=config.jit_compile,
                               strategy=strategy)
    base_rates = [float(opt.learning_rate.numpy()) for opt, _ in groups]
    eval_step = make_eval_step(model)
    progress = Progress()

    chief = distribute.is_chief(strategy)
    manager = writer = None
    if output_dir is not None:
        checkpoint = tf.train.Checkpoint(
            model=model, optimizers=[opt for opt, _ in groups], progress=progress)
        checkpoint_dir = os.path.join(output_dir, "checkpoints")
        save_dir = distribute.write_dir(checkpoint_dir, strategy)
        manager = tf.train.CheckpointManager(checkpoint, save_dir, max_to_keep=2)
        latest = (manager.latest_checkpoint if chief
                  else tf.train.latest_checkpoint(checkpoint_dir))
        if not latest and glob.glob(os.path.join(checkpoint_dir, "ckpt-*.index")):
            raise CheckpointError(
                f"{checkpoint_dir} holds checkpoints but no readable 'checkpoint' "
                f"file naming the latest; pass --restart to start afresh.")
        if latest:
            try:
                checkpoint.restore(latest).assert_consumed()
            except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:
                raise CheckpointError(
                    f"cannot restore checkpoint {latest} ({type(e).__name__}: "
                    f"{str(e).splitlines()[0]}); pass --restart to start afresh."
                ) from e
            if int(progress.epoch) >= config.epochs:
                log(f"{name}: already trained for {config.epochs} epochs "
                    f"({latest})")
            else:
                log(f"{name}: resumed from {latest} at "
                    f"epoch {int(progress.epoch) + 1}, step "
                    f"{int(progress.step_in_epoch)}")
        if chief:
            writer = tf.summary.create_file_writer(
                os.path.join(output_dir, "summaries"))

    images = tf.constant(train_images)
    labels = tf.constant(train_labels)
    steps_per_epoch = math.ceil(len(train_images) / config.batch_size)
    history: List[Dict] = json.loads(progress.history.numpy().decode())
    steps_run = 0

    def save_checkpoint():
        progress.history.assign(json.dumps(history))
        if manager is not None:
            manager.save()
            distribute.remove_write_dir(save_dir, checkpoint_dir)

    # One iterator over every remaining epoch: see `datasets.make_dataset`.
    first_epoch = int(progress.epoch)
    remaining = config.epochs - first_epoch
    if remaining > 0:
        start_step = int(progress.step_in_epoch)
        if strategy is None:
            batches = datasets.make_dataset(
                images, labels, config.batch_size, shuffle=True, seed=config.seed,
                epoch=first_epoch, start_step=start_step, num_epochs=remaining)
        else:
            batches = replica_batches(strategy, images, labels, config.batch_size,
                                      config.seed, first_epoch, start_step, remaining)
        batches = iter(batches)

    while int(progress.epoch) < config.epochs:
        epoch = int(progress.epoch)
        factor = learning_rate_factor(config, epoch)
        for (opt, _), rate in zip(groups, base_rates, strict=True):
            opt.learning_rate.assign(rate * factor)
        done = int(progress.step_in_epoch)
        # Losses stay tensors until needed, so the loop never waits on a step.
        losses: List[tf.Tensor] = []
        counts: List[int] = []
        loss_before = float(progress.loss_sum)
        started = time.perf_counter()
        last_report = started
        while done < steps_per_epoch:
            batch_images, batch_labels = next(batches)
            loss = step(batch_images, batch_labels)
            examples = min(config.batch_size,
                           len(train_images) - done * config.batch_size)
            losses.append(loss)
            counts.append(examples)
            done += 1
            steps_run += 1
            now = time.perf_counter()
            if now - last_report >= progress_seconds and done < steps_per_epoch:
                log(f"{name}: epoch {epoch + 1}/{config.epochs} step "
                    f"{done}/{steps_per_epoch} loss {float(loss):.4f}")
                last_report = now
            interrupt = stop_after_steps is not None and steps_run >= stop_after_steps
            every = config.checkpoint_every_steps
            if interrupt or (every and done % every == 0 and done < steps_per_epoch):
                elapsed = time.perf_counter() - started
                progress.seconds.assign_add(elapsed)
                progress.epoch_seconds.assign_add(elapsed)
                progress.step_in_epoch.assign(done)
                progress.loss_sum.assign(loss_before + _total(losses, counts))
                save_checkpoint()
                started = time.perf_counter()
                if interrupt:
                    return {}
        progress.step_in_epoch.assign(done)
        progress.loss_sum.assign(loss_before + _total(losses, counts))

        elapsed = time.perf_counter() - started
        progress.seconds.assign_add(elapsed)
        progress.epoch_seconds.assign_add(elapsed)
        epoch_seconds = float(progress.epoch_seconds)
        train_loss = float(progress.loss_sum) / len(train_images)
        if not math.isfinite(train_loss):
            raise DivergedError(
                f"{name} diverged: the training loss is {train_loss} in epoch "
                f"{epoch + 1}; lower the learning rate.")
        test_loss, test_accuracy = evaluate(eval_step, test_images, test_labels)
        record = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "seconds": epoch_seconds,
            "elapsed_seconds": float(progress.seconds),
            "examples_per_second": len(train_images) / max(epoch_seconds, 1e-9),
        }
        history.append(record)
        log(f"{name}: epoch {epoch + 1}/{config.epochs} train_loss "
            f"{record['train_loss']:.4f} test_loss {test_loss:.4f} test_accuracy "
            f"{test_accuracy:.4f} seconds {epoch_seconds:.1f} examples/s "
            f"{record['examples_per_second']:.0f}")
        if writer is not None:
            write_summaries(writer, model, record)
        progress.epoch.assign_add(1)
        progress.step_in_epoch.assign(0)
        progress.loss_sum.assign(0.0)
        progress.epoch_seconds.assign(0.0)
        save_checkpoint()

    if manager is not None and chief:
        log(f"{name}: checkpoint {manager.latest_checkpoint}")
    return summarize(config, model, history)


def _total(losses: List[tf.Tensor], counts: List[int]) -> float:
    """Sum of the batches' mean losses times their sizes; 0 for none."""
    if not losses:
        return 0.0
    return float(np.dot(tf.stack(losses).numpy().astype(np.float64), counts))


def write_summaries(writer, model: Classifier, record: Dict) -> None:
    """Loss and accuracy scalars, and the Gaussian centers as images.

    Written with `tf.summary.write` and TensorBoard's plugin names, so that
    TensorBoard shows them while the library does not depend on the
    tensorboard package.
    """
    with writer.as_default(step=record["epoch"]):
        for key in ("train_loss", "test_loss", "test_accuracy"):
            tf.summary.write(key, tf.constant(record[key], tf.float32),
                             metadata=_plugin_metadata("scalars"))
        if isinstance(model.hidden, GaussianRBF):
            images = center_images(model.hidden.mu.numpy())
            if images is not None:
                encoded = [tf.io.encode_png(tf.cast(255 * image, tf.uint8))
                           for image in images]
                side = str(images.shape[1])
                tf.summary.write("centers", tf.stack([side, side] + encoded),
                                 metadata=_plugin_metadata("images"))
    writer.flush()


def _plugin_metadata(plugin_name: str) -> bytes:
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin_name
    return metadata.SerializeToString()


def summarize(config: NetworkConfig, model: Classifier, history: List[Dict]) -> Dict:
    """The record of one trained network, as stored in results.json."""
    accuracies = [r["test_accuracy"] for r in history]
    reached = [r for r in history if r["test_accuracy"] >= TARGET_ACCURACY]
    return {
        "layer": config.layer,
        "units": config.units,
        "params": model.param_counts(),
        "epochs": history,
        "final_test_accuracy": accuracies[-1] if accuracies else None,
        "best_test_accuracy": max(accuracies) if accuracies else None,
        "target_accuracy": TARGET_ACCURACY,
        "epochs_to_target": reached[0]["epoch"] if reached else None,
        "seconds_to_target": reached[0]["elapsed_seconds"] if reached else None,
        "seconds_per_epoch": (float(np.mean([r["seconds"] for r in history]))
                              if history else None),
        "config": dataclasses.asdict(config),
    }
