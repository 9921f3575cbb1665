"""Ports on loopback for the servers tests start themselves (gunicorn, Prometheus, a registry, etcd)."""

from __future__ import annotations

import socket


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
