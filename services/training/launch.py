"""Run N trainer processes on this machine as one MultiWorkerMirroredStrategy cluster.

``python -m services.training.launch --workers N [trainer flags...]`` (what ``make train
WORKERS=N`` calls) picks N free loopback ports, gives worker ``i`` the real ``TF_CONFIG``
``{"cluster": {"worker": ["127.0.0.1:p0", ...]}, "task": {"type": "worker", "index": i}}`` and
starts ``python -m services.training.train`` with the same flags, exactly as N pods of the
Indexed Job would run. Each worker's log lines are relayed with a ``worker i:`` prefix.

The launcher waits for every worker and exits with the chief's code (or, when the chief
succeeded, the first failing worker's): workers detect a lost peer themselves and fail within
their ``--peer-timeout``, so a killed worker never leaves the others hanging. SIGINT and
SIGTERM are passed on to the workers. Unless ``--threads`` is given, each worker gets an equal
share of the cores, as pods on one node would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import TextIO

from services.contract import MAX_TRAINING_WORKERS

REPO_ROOT = Path(__file__).resolve().parents[2]
PORT_IN_USE = ("Address already in use", "Could not start gRPC server", "Failed to add port")
ATTEMPTS = 3


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports the kernel reports free (bound to port 0, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports: list[int], index: int) -> str:
    """The TF_CONFIG of worker ``index`` in a loopback cluster on ``ports``."""
    return json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]}, "task": {"type": "worker", "index": index}}
    )


def _relay(index: int, stream: Iterable[str], sink: TextIO, seen: list[str]) -> None:
    for line in stream:
        seen.append(line)
        sink.write(f"worker {index}: {line}")
        sink.flush()


def run_cluster(workers: int, trainer_args: list[str], env: dict[str, str] | None = None) -> tuple[int, bool]:
    """Start ``workers`` trainers, wait for all; returns (exit code, whether a port clash killed it)."""
    base_env = dict(os.environ if env is None else env)
    for name in ("TRAINING_WORKERS", "JOB_COMPLETION_INDEX", "TRAINING_JOB_NAME", "TRAINING_WORKER_SERVICE"):
        base_env.pop(name, None)
    args = list(trainer_args)
    if not any(a == "--threads" or a.startswith("--threads=") for a in args) and not base_env.get("TRAINING_THREADS"):
        args += ["--threads", str(max(1, (os.cpu_count() or 1) // workers))]
    ports = free_ports(workers)
    procs, relays, logs = [], [], []
    for index in range(workers):
        worker_env = {**base_env, "TF_CONFIG": tf_config(ports, index), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.training.train", *args],
            cwd=REPO_ROOT,
            env=worker_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        sys.stderr.write(f"launch: worker {index} pid {proc.pid} on 127.0.0.1:{ports[index]}\n")
        seen: list[str] = []
        relay = threading.Thread(target=_relay, args=(index, proc.stdout, sys.stderr, seen), daemon=True)
        relay.start()
        procs.append(proc)
        relays.append(relay)
        logs.append(seen)

    def forward(signum: int, _frame: FrameType | None) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [proc.wait() for proc in procs]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for relay in relays:
        relay.join()
    codes = [code if code >= 0 else 128 - code for code in codes]  # killed by signal N: 128 + N
    clash = any(
        code != 0 and any(m in "".join(log) for m in PORT_IN_USE) for code, log in zip(codes, logs, strict=True)
    )
    failing = [code for code in codes if code != 0]
    code = codes[0] if codes[0] != 0 else (failing[0] if failing else 0)
    sys.stderr.write(f"launch: exit codes {codes}\n")
    return code, clash


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--workers N`` then the trainer's own flags."""
    parser = argparse.ArgumentParser(
        prog="python -m services.training.launch",
        description="Train with N local worker processes (MultiWorkerMirroredStrategy on loopback); "
        "every other flag goes to python -m services.training.train.",
    )
    parser.add_argument("--workers", type=int, required=True, help=f"worker processes, 1 to {MAX_TRAINING_WORKERS}")
    ns, trainer_args = parser.parse_known_args(argv)
    if not 1 <= ns.workers <= MAX_TRAINING_WORKERS:
        parser.error(f"--workers {ns.workers}: must be between 1 and {MAX_TRAINING_WORKERS}")
    for attempt in range(1, ATTEMPTS + 1):
        code, clash = run_cluster(ns.workers, trainer_args)
        if not clash or attempt == ATTEMPTS:
            return code
        sys.stderr.write("launch: a worker port was taken meanwhile; retrying on new ports\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
