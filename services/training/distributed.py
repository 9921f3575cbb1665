"""The training loop, on TensorFlow's own distribution engine (``tf.distribute``).

One loop serves one worker (TensorFlow's default strategy) and many
(``MultiWorkerMirroredStrategy``: every worker holds a replica of the variables and gradients
are summed by collective all-reduce over gRPC). Keras 3's ``Model.fit`` cannot run under
MultiWorkerMirroredStrategy (keras-team/keras#20585), so the step is written out: the model,
its layers and the Adam optimizer are Keras, the distribution is ``tf.distribute``.

Each step consumes one *global* batch of the epoch's seeded permutation, split into equal-ish
consecutive slices, one per replica (worker ``w`` feeds replicas ``w*L .. w*L+L-1``), and the loss
is the mean over the global batch. So one step sees the same examples and takes the same
gradient whatever the number of workers; only float summation order and dropout masks differ.

A worker that loses its peers gets an error from the collective (TensorFlow's coordination
service notices missing heartbeats within seconds) and raises :class:`PeerLost`. A worker of a
group runs under :func:`supervise`, a parent process that ends it when nothing moves for
``peer_timeout`` seconds (peers that never join, a wedged collective), so no worker ever hangs
past that.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType, ModuleType
from typing import TYPE_CHECKING

import numpy as np

from services.training.settings import TFConfig

if TYPE_CHECKING:  # untyped runtimes (see pyproject.toml), named for the reader; imported lazily
    import tensorflow
    from keras import Model
    from keras.optimizers import Optimizer

log = logging.getLogger("services.training")

STRATEGY_SINGLE = "default"
STRATEGY_MULTI_WORKER = "MultiWorkerMirroredStrategy"
#: The pipe a supervised worker writes its heartbeats to (see :func:`supervise`).
HEARTBEAT_ENV = "_TRAINING_HEARTBEAT_FD"
PR_SET_PDEATHSIG = 1


class PeerLost(RuntimeError):
    """A distributed peer failed, vanished or never joined: exit code 4, nothing published."""


@dataclass(frozen=True)
class Group:
    """Where this process stands: its worker index, the worker count, and the strategy."""

    strategy: tensorflow.distribute.Strategy
    index: int = 0
    workers: int = 1

    @property
    def is_chief(self) -> bool:
        """Worker 0 evaluates and publishes; the others only train."""
        return self.index == 0

    @property
    def name(self) -> str:
        """The strategy, as metadata.json records it."""
        return STRATEGY_MULTI_WORKER if self.workers > 1 else STRATEGY_SINGLE


class Heartbeat:
    """The supervised worker's side of :func:`supervise`: one byte down a pipe per sign of life."""

    def __init__(self, fd: int | None):
        self._fd = fd

    @classmethod
    def from_env(cls) -> Heartbeat:
        """The pipe :func:`supervise` handed down (none when this process is not supervised)."""
        raw = os.environ.pop(HEARTBEAT_ENV, "")
        return cls(int(raw) if raw.isdigit() else None)

    def beat(self) -> None:
        """Record progress (started, joined the cluster, finished a step)."""
        if self._fd is not None:
            os.write(self._fd, b".")

    def close(self) -> None:
        """No collective is left to wait for: the supervisor stops timing this process."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends it SIGKILL if the supervisor dies first."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the supervisor's own kill path still applies
        pass


def supervise(
    argv: list[str], timeout: int, what: str, code_on_timeout: int, on_kill: Callable[[int], None] | None = None
) -> int:
    """Run this trainer as a child process and end it when it shows no progress for ``timeout`` s.

    A worker waiting for an absent peer blocks inside TensorFlow's C++ runtime holding the GIL,
    where neither a Python thread nor a signal handler can run; a parent process without
    TensorFlow can always act. Returns the child's exit code, or ``code_on_timeout`` after
    killing it and calling ``on_kill`` with its pid (to remove what it left behind).
    """
    read_fd, write_fd = os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-m", "services.training.train", *argv],
        env={**os.environ, HEARTBEAT_ENV: str(write_fd)},
        pass_fds=(write_fd,),
        preexec_fn=_die_with_parent,
    )
    os.close(write_fd)

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                log.error("%s for %d s; stopping it, nothing was published", what, timeout)
                child.kill()
                child.wait()
                if on_kill is not None:
                    on_kill(child.pid)
                return code_on_timeout
            if not os.read(read_fd, 4096):  # the child closed its end: done with peers, or exited
                break
            deadline = time.monotonic() + timeout
        code = child.wait()
    finally:
        os.close(read_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code if code >= 0 else 128 - code


def join_group(tf: ModuleType, cluster: TFConfig | None, peer_timeout: int) -> Group:
    """The strategy for this process: TensorFlow's default one, or MultiWorkerMirroredStrategy on
    ``cluster`` (which blocks until every worker has joined; the caller's watchdog bounds that)."""
    if cluster is None:
        return Group(tf.distribute.get_strategy())
    workers = cluster.cluster["worker"]
    index = cluster.task.index
    log.info("worker %d of %d (pid %d): joining %s (TF_CONFIG)", index, len(workers), os.getpid(), ", ".join(workers))
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({"worker": workers}), task_type="worker", task_id=index, rpc_layer="grpc"
    )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=resolver,
        communication_options=tf.distribute.experimental.CommunicationOptions(timeout_seconds=peer_timeout),
    )
    log.info("worker %d of %d: all workers joined (%d replicas)", index, len(workers), strategy.num_replicas_in_sync)
    return Group(strategy, index, len(workers))


def leave_group(group: Group) -> None:
    """Stop MultiWorkerMirroredStrategy's peer health checks once no collective is left to run."""
    stop = getattr(group.strategy.extended, "_stop_check_health_thread", None)
    if group.workers > 1 and stop is not None:
        stop()


def _peer_errors(tf: ModuleType) -> tuple[type[BaseException], ...]:
    errors = tf.errors
    return (
        errors.UnavailableError,
        errors.DeadlineExceededError,
        errors.CancelledError,
        errors.AbortedError,
        errors.FailedPreconditionError,
        errors.InternalError,
    )


def _reason(exc: BaseException) -> str:
    """The line of a TensorFlow error that says what happened (not "Graph execution error:")."""
    for line in (getattr(exc, "message", "") or str(exc)).splitlines():
        line = line.strip()
        if line and not line.startswith(
            ("Graph execution error", "Detected at node", "File ", "[[", "Additional GRPC")
        ):
            return line.split(" [[")[0]
    return "a collective operation failed"


def batch_plan(n: int, batch_size: int, epochs: int, seed: int) -> list[np.ndarray]:
    """Every global batch of the run, as example indices: one seeded permutation per epoch, cut
    into ``batch_size`` slices (the last one of an epoch may be short). Same on every worker."""
    rng = np.random.default_rng(seed)
    plan: list[np.ndarray] = []
    for _ in range(epochs):
        order = rng.permutation(n)
        plan.extend(order[start : start + batch_size] for start in range(0, n, batch_size))
    return plan


def fit(
    tf: ModuleType,
    keras: ModuleType,
    group: Group,
    model_fn: Callable[[], Model],
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    beat: Callable[[], None] = lambda: None,
) -> tuple[Model, Optimizer, dict[str, list[float]]]:
    """Train ``model_fn()`` (built in the strategy's scope) on ``x, y``; returns the model, its
    optimizer and the per-epoch history (``loss``, ``accuracy``, ``seconds``).

    Raises :class:`PeerLost` when a collective fails because a peer is gone.
    """
    strategy = group.strategy
    steps_per_epoch = -(-len(y) // batch_size)
    plan = batch_plan(len(y), batch_size, epochs, seed)
    with strategy.scope():
        model = model_fn()
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        optimizer.build(model.trainable_variables)
    train_step = _train_step(tf, keras, strategy, model, optimizer)
    iterator = iter(strategy.distribute_datasets_from_function(_dataset_fn(tf, group, plan, x, y)))
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "seconds": []}
    try:
        for epoch in range(epochs):
            started, loss_sum, hit_sum = time.monotonic(), 0.0, 0.0
            for step in range(steps_per_epoch):
                loss, hits = train_step(iterator)
                batch = len(plan[epoch * steps_per_epoch + step])
                loss_sum += float(loss) * batch
                hit_sum += float(hits)
                beat()
            history["loss"].append(loss_sum / len(y))
            history["accuracy"].append(hit_sum / len(y))
            history["seconds"].append(time.monotonic() - started)
            log.info(
                "epoch %d/%d loss=%.4f accuracy=%.4f",
                epoch + 1,
                epochs,
                history["loss"][-1],
                history["accuracy"][-1],
            )
    except _peer_errors(tf) as exc:
        if group.workers == 1:
            raise
        raise PeerLost(
            f"worker {group.index} of {group.workers} lost its peers during epoch {len(history['loss']) + 1} "
            f"({type(exc).__name__}: {_reason(exc)})"
        ) from exc
    return model, optimizer, history


def _dataset_fn(
    tf: ModuleType, group: Group, plan: list[np.ndarray], x: np.ndarray, y: np.ndarray
) -> Callable[[tensorflow.distribute.InputContext], tensorflow.data.Dataset]:
    """The input function of ``distribute_datasets_from_function``: this worker's replicas' slices
    of every global batch of ``plan``, in order, each with the global batch's size (the loss's
    denominator)."""
    replicas = group.strategy.num_replicas_in_sync
    local = replicas // group.workers
    first_replica = group.index * local

    def per_replica_batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.float32]]:
        for global_batch in plan:
            slices = np.array_split(global_batch, replicas)
            for replica in range(first_replica, first_replica + local):
                chunk = slices[replica]
                yield x[chunk], y[chunk], np.float32(len(global_batch))

    def dataset_fn(_context: tensorflow.distribute.InputContext) -> tensorflow.data.Dataset:
        spec = (
            tf.TensorSpec((None, *x.shape[1:]), tf.float32),
            tf.TensorSpec((None,), tf.int64),
            tf.TensorSpec((), tf.float32),
        )
        return tf.data.Dataset.from_generator(per_replica_batches, output_signature=spec).prefetch(2)

    return dataset_fn


def _train_step(
    tf: ModuleType, keras: ModuleType, strategy: tensorflow.distribute.Strategy, model: Model, optimizer: Optimizer
) -> Callable[[tensorflow.distribute.DistributedIterator], tuple[tensorflow.Tensor, tensorflow.Tensor]]:
    """One step on every replica (gradients summed across them by the optimizer), as a
    ``tf.function`` that returns the global batch's summed loss and correct answers."""

    def replica_step(
        images: tensorflow.Tensor, labels: tensorflow.Tensor, global_size: tensorflow.Tensor
    ) -> tuple[tensorflow.Tensor, tensorflow.Tensor]:
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            per_example = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
            loss = tf.reduce_sum(per_example) / global_size  # replicas' losses sum to the global mean
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))  # sums across replicas
        hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probabilities, axis=1), labels), tf.float32))
        return loss, hits

    @tf.function
    def train_step(iterator: tensorflow.distribute.DistributedIterator) -> tuple[tensorflow.Tensor, tensorflow.Tensor]:
        loss, hits = strategy.run(replica_step, args=next(iterator))
        return strategy.reduce("SUM", loss, axis=None), strategy.reduce("SUM", hits, axis=None)

    return train_step


def plain_copy(
    keras: ModuleType,
    model: Model,
    optimizer: Optimizer,
    model_fn: Callable[[], Model],
    compile_fn: Callable[[Model], Model],
) -> Model:
    """A copy of a (possibly mirrored) model with ordinary variables and its optimizer state, to
    evaluate and export on one worker without a collective."""
    copy = compile_fn(model_fn())
    copy.set_weights(model.get_weights())
    copy.optimizer.build(copy.trainable_variables)
    sources, targets = optimizer.variables, copy.optimizer.variables
    if len(sources) != len(targets):
        raise RuntimeError(f"optimizer state mismatch: {len(sources)} variables vs {len(targets)}")
    for target, source in zip(targets, sources, strict=True):
        target.assign(np.asarray(source))
    return copy
