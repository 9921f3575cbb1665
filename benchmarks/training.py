"""Training throughput with 1 and 2 local workers (``make bench-train``).

Runs the real trainer twice on the same data, seed and global batch: once alone (all cores), once
as two MultiWorkerMirroredStrategy workers on loopback (one core's share each, as the launcher
gives them), and prints samples/s of the training loop (from each run's ``metadata.json``), the
wall time of the whole run and the held-out accuracy. On a 2-core machine expect no speed-up:
two workers share the same cores and add one gradient all-reduce per step; the point of
distribution here is correctness, the speed-up comes from more machines.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from generator.paths import REPO_ROOT


def run(workers: int, root: Path, epochs: int, examples: int) -> dict:
    """One training run; returns its metadata's metrics and timings plus the wall time."""
    module = ["services.training.train"] if workers == 1 else ["services.training.launch", "--workers", str(workers)]
    args = ["--model-root", str(root), "--epochs", str(epochs), "--max-examples", str(examples), "--seed", "42"]
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", *module, *args], cwd=REPO_ROOT, capture_output=True, text=True)
    wall = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"bench-train: {workers} worker(s) failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    meta = json.loads(next(root.glob("mnist/*/metadata.json")).read_text())
    return {"wall": wall, **meta["training"], "accuracy": meta["metrics"]["holdout_accuracy"]}


def main(argv: list[str] | None = None) -> int:
    """Print one row per worker count and the ratio to one worker."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--examples", type=int, default=4000)
    ns = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        for workers in (1, 2):
            rows.append((workers, run(workers, Path(tmp) / f"w{workers}", ns.epochs, ns.examples)))
    base = rows[0][1]["samples_per_second"]
    print(f"training: {ns.examples} examples x {ns.epochs} epochs, global batch 32, seed 42")
    print(f"{'workers':>7} {'samples/s':>10} {'vs 1':>6} {'loop s':>7} {'wall s':>7} {'accuracy':>9}")
    for workers, row in rows:
        print(
            f"{workers:>7} {row['samples_per_second']:>10.0f} {row['samples_per_second'] / base:>5.2f}x "
            f"{row['train_seconds']:>7.1f} {row['wall']:>7.1f} {row['accuracy']:>9.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
