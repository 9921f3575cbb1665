"""gunicorn's C request parser against its Python one in our server (``make bench-parsers``).

Two of our servers run side by side, as ``make serve`` runs them: one with gunicorn's default
``http_parser = auto`` (which picks gunicorn_h1c, the C parser, where it is installed: the
inference group and the server image) and one told ``--http-parser=python`` through
``GUNICORN_CMD_ARGS``. Each round loads the no-op route and single-image JSON ``:predict`` on
both, one right after the other, the order alternating from round to round, with wrk as in
``make bench``. CPU per request is the server's whole process tree's CPU time over the timed window
divided by the requests answered; the ratio C/Python is taken per round, and its median printed.
Not a test: it prints the numbers and exits 0 unless a server cannot start or h1c is missing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from benchmarks.load import Result, run_wrk
from benchmarks.servers import MODEL, ServerProcess, find_or_train_model, start_model_server
from benchmarks.serving import REPO_ROOT, predict_bodies, sample_images

PARSERS = {"C (auto)": {}, "Python": {"GUNICORN_CMD_ARGS": "--http-parser=python"}}


def _row(server: ServerProcess, route: str, body: bytes | None, args) -> Result:
    return run_wrk(route, server.port, route, body, server.proc.pid, args)


def main(argv: list[str] | None = None) -> int:
    """Run ``--rounds`` alternating rounds; print CPU per request of each parser and the ratios."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.parsers", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-root", default=str(REPO_ROOT / "models"))
    p.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "2")))
    p.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "4")))
    p.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "8")))
    p.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "4")))
    p.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "6")))
    args = p.parse_args(argv)
    try:
        import gunicorn_h1c  # noqa: F401
    except ImportError:
        print("gunicorn_h1c is not installed: nothing to compare (make venv installs it)", file=sys.stderr)
        return 1
    root = find_or_train_model(Path(args.model_root))
    single, _batch, _b64 = predict_bodies(sample_images(1))
    routes = {"no-op route": ("/v2/health/live", None), "1 image, JSON": (f"/v1/models/{MODEL}:predict", single)}
    servers = {name: start_model_server(root, args.workers, args.threads, **env) for name, env in PARSERS.items()}
    cpu: dict[tuple[str, str], list[float]] = {}
    try:
        for server in servers.values():
            server.wait_ready(120)
        print(
            f"{args.workers} worker(s) x {args.threads} threads, wrk -c{args.connections}, {args.seconds:g} s per row"
        )
        for round_no in range(args.rounds):
            order = list(servers) if round_no % 2 == 0 else list(reversed(servers))
            for route, (path, body) in routes.items():
                for name in order:
                    result = _row(servers[name], path, body, args)
                    cpu.setdefault((route, name), []).append(result.cpu_ms)
                    print(
                        f"  round {round_no + 1}: {route:14} {name:9} {result.rps:8,.0f} req/s "
                        f"{result.cpu_ms * 1000:7.0f} µs CPU/request  ({result.errors} errors)",
                        flush=True,
                    )
    finally:
        for server in servers.values():
            server.stop()
    c_name, py_name = PARSERS
    print(f"\nCPU per request, {c_name} / {py_name}, per round (median):")
    for route in routes:
        ratios = [c / py for c, py in zip(cpu[(route, c_name)], cpu[(route, py_name)], strict=True)]
        listed = ", ".join(f"{r:.2f}" for r in ratios)
        print(
            f"  {route:14} {listed}  (median {statistics.median(ratios):.2f}; "
            f"{statistics.median(cpu[(route, c_name)]) * 1000:.0f} vs "
            f"{statistics.median(cpu[(route, py_name)]) * 1000:.0f} µs)"
        )
    print(f"machine load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
