"""How ``make bench`` loads a server and what it counts: wrk for HTTP, grpcio client processes for gRPC,
the server process tree's CPU time and RSS from /proc, and the model alone in this process.

Every figure a ratio compares is a count over CPU time or over the same timed window, so a loaded
machine slows both sides of a ratio alike.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import tempfile
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.servers import MODEL


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

    @property
    def images_per_cpu_second(self) -> float:
        """Images per CPU-second of the whole server (every process): efficiency, whatever the cores."""
        return self.images_per_request / (self.cpu_ms / 1000)


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


def _grpc_client(target: str, method: str, payload: bytes, seconds: float, start_at: float, out) -> None:
    """One client process: one channel, one unary method called back to back (serialized request bytes)."""
    import grpc

    latencies = array("d")
    errors = 0
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
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


TFSERVING_PREDICT = "/tensorflow.serving.PredictionService/Predict"
KSERVE_MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


def tfserving_request(images: np.ndarray) -> bytes:
    """A serialized TF Serving ``PredictRequest`` carrying ``images`` in ``tensor_content``."""
    from services.inference import tfserving

    request = tfserving.PredictRequest()
    request.model_spec.name = MODEL
    tensor = request.inputs["image"]
    tensor.dtype = 1  # DT_FLOAT
    for size in images.shape:
        tensor.tensor_shape.dim.add(size=size)
    tensor.tensor_content = np.ascontiguousarray(images, dtype="<f4").tobytes()
    return request.SerializeToString()


KSERVE_REQUEST = """
import sys
import numpy as np
from kserve.protocol.grpc.grpc_predict_v2_pb2 import ModelInferRequest
images = np.load(sys.stdin.buffer)
request = ModelInferRequest(model_name=sys.argv[1])
request.inputs.add(name="image", datatype="FP32", shape=images.shape)
request.raw_input_contents.append(np.ascontiguousarray(images, dtype="<f4").tobytes())
sys.stdout.buffer.write(request.SerializeToString())
"""


def kserve_request(kserve_python: Path, images: np.ndarray) -> bytes:
    """A serialized V2 ``ModelInferRequest`` with ``images`` in ``raw_input_contents`` (what KServe's
    own gRPC client sends for a numpy input), built by KServe's protos in its venv."""
    buffer = tempfile.TemporaryFile()
    np.save(buffer, images)
    buffer.seek(0)
    argv = [str(kserve_python), "-c", KSERVE_REQUEST, MODEL]
    return subprocess.run(argv, stdin=buffer, capture_output=True, check=True).stdout


def run_grpc(name: str, target: str, method: str, payload: bytes, images: int, server_pid: int, args) -> Result:
    """``--connections`` client processes, each its own channel, calling ``method`` with ``payload``."""
    ctx = mp.get_context("spawn")  # gRPC and fork do not mix
    start_at = time.time() + 2.0
    pipes, procs = [], []
    for _ in range(args.connections):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_grpc_client, args=(target, method, payload, args.seconds, start_at, child))
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
        images,
    )
    result.cpu_ms = cpu / max(1, n) * 1000
    result.rss_mb = tree_rss_mb(server_pid)
    return result


def model_alone(version_dir: Path, images: np.ndarray, seconds: float) -> dict[int, Result]:
    """LiteRT alone, in this process, one thread, at batch 1 and 64 for about ``seconds`` each; its
    CPU time (``time.process_time``), so images per CPU-second compare with a server's."""
    from services.inference.backends import LiteRTBackend

    backend = LiteRTBackend(version_dir, pool_size=1, num_threads=1)
    out = {}
    for n in (1, len(images)):
        batch = np.ascontiguousarray(images[:n])
        for _ in range(10):
            backend.predict(batch)
        calls, started, cpu0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - started < seconds:
            backend.predict(batch)
            calls += 1
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
        name = f"M{n:<3} LiteRT alone, {n} image(s), one thread"
        out[n] = Result(name, calls, 0, wall, float("nan"), float("nan"), n, cpu_ms=cpu / calls * 1000)
    return out
