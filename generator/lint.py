"""``python -m generator lint``: ``helm lint --strict`` on every chart under ``charts/``.

The other linters (ruff, mypy, yamllint, hadolint, the GitHub workflow schema, zizmor) are
pre-commit hooks in ``.pre-commit-config.yaml``; ``make lint`` runs them all, this one included.
This module exists because helm is bootstrapped by ``generator.tools`` rather than installed.
Exit codes: 0 clean, 1 a chart has problems, 2 helm could not run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from generator.paths import REPO_ROOT
from generator.tools import ToolError, helm_path

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def charts(root: Path) -> list[Path]:
    """Every chart directory under ``root/charts``."""
    return sorted(p.parent for p in (root / "charts").glob("*/Chart.yaml"))


def lint_chart(helm: str, chart: Path) -> tuple[int, str]:
    """``helm lint --strict`` of one chart: (exit code, output)."""
    proc = subprocess.run([helm, "lint", "--strict", str(chart)], capture_output=True, text=True)
    return (EXIT_CLEAN if proc.returncode == 0 else EXIT_FINDINGS), (proc.stdout + proc.stderr).strip()


def main(argv: list[str] | None = None) -> int:
    """Lint every chart; print one line per chart and the output of those that fail."""
    parser = argparse.ArgumentParser(prog="python -m generator lint", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root")
    try:
        args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        helm = helm_path()
    except (ToolError, OSError, subprocess.SubprocessError) as exc:
        print(f"lint: helm is not available: {exc}", file=sys.stderr)
        return EXIT_ERROR
    worst = EXIT_CLEAN
    for chart in charts(args.root.resolve()):
        code, output = lint_chart(helm, chart)
        print(f"lint: helm lint --strict {chart.relative_to(args.root.resolve())}: {'ok' if code == 0 else 'FAILED'}")
        if code:
            print("\n".join("  " + line for line in output.splitlines()))
        worst = max(worst, code)
    return worst


if __name__ == "__main__":
    sys.exit(main())
