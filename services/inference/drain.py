"""``python -m services.inference.drain``: start draining before SIGTERM (an exec preStop hook).

Kubernetes runs the pod's preStop hook, waits for it, and only then sends SIGTERM, while endpoint
removal spreads through kube-proxy, gateways and meshes at its own pace. This command tells every
worker of the server to begin the soft drain at once: readiness turns false and every response
carries ``Connection: close``, so clients holding keep-alive connections (a gateway, a mesh
sidecar) reconnect, through the Service, to other pods while this one still answers everything.
Then it waits ``--wait`` seconds (the preStop window). SIGTERM does the rest (``worker.py``).

The workers see the marker file within half a second. In a container the server is PID 1
(the default); elsewhere pass the gunicorn master's pid.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from services.inference.settings import DRAIN_MARKER, WORKER_STATE_DIR_ENV


def state_dir(server_pid: int) -> Path:
    """The shared state directory of the server whose master is ``server_pid`` (see gunicorn.conf.py)."""
    configured = os.environ.get(WORKER_STATE_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"inference-workers-{server_pid}"


def request_drain(server_pid: int) -> Path:
    """Write the drain marker for the server ``server_pid``; returns its path."""
    directory = state_dir(server_pid)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"no model server state directory {directory} (is the server running as pid {server_pid}?)"
        )
    marker = directory / DRAIN_MARKER
    marker.touch()
    return marker


def main(argv: list[str] | None = None) -> int:
    """Mark the server draining, then wait out the preStop window."""
    parser = argparse.ArgumentParser(prog="python -m services.inference.drain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-pid", type=int, default=1, help="pid of the gunicorn master (default 1: a container)")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait after marking (the preStop window)")
    args = parser.parse_args(argv)
    try:
        marker = request_drain(args.server_pid)
    except OSError as exc:
        print(f"drain: {exc}", file=sys.stderr)
        return 2
    print(f"drain: {marker} written; waiting {args.wait:g}s", file=sys.stderr)
    time.sleep(max(0.0, args.wait))
    return 0


if __name__ == "__main__":
    sys.exit(main())
