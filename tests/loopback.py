"""Ports on loopback for the servers tests start themselves (gunicorn, Prometheus, a registry, etcd),
and stopping exactly what a test started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess


def free_ports(count: int) -> list[int]:
    """``count`` distinct ephemeral ports on 127.0.0.1 that were free a moment ago (held open
    together while they are picked: two free_port() calls in a row may return the same one)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    """An ephemeral TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def stop(proc: subprocess.Popen, timeout: float = 30.0, *, whole_group: bool = True) -> int | None:
    """SIGTERM a server a test started in its own session (its process group, or only the process
    when it stops its children itself, as gunicorn's master does), wait for it, and SIGKILL the
    group after ``timeout``; the exit code."""
    if proc.poll() is None:
        if whole_group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode
