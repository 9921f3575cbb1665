"""Bitnami's readme-generator-for-helm, the ecosystem's tool for a chart README's parameter tables.

The tables are written from the ``## @section`` / ``## @param`` annotations in ``values.yaml``
(the tool also fails when a value has no annotation). The npm package is pinned with its lock in
``generator/tools/readme-generator/`` and installed with ``npm ci`` into ``.tools/``, once per lock.

``python -m generator.tools.readme_generator [--check] [CHART_DIR...]`` rewrites each chart's
README (default: every chart under ``charts/``); ``--check`` writes nothing and exits 1 when a
README is stale. ``make chart-readme`` runs it.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from generator.paths import REPO_ROOT, TOOLS_DIR
from generator.tools import ToolError

PACKAGE_DIR = Path(__file__).resolve().parent / "readme-generator"
INSTALL_DIR = TOOLS_DIR / "readme-generator"


def readme_generator() -> Path:
    """The readme-generator executable, installed from the pinned lock when it is not yet."""
    lock = (PACKAGE_DIR / "package-lock.json").read_bytes()
    stamp = INSTALL_DIR / ".lock-sha256"
    binary = INSTALL_DIR / "node_modules" / ".bin" / "readme-generator"
    if binary.exists() and stamp.is_file() and stamp.read_text() == hashlib.sha256(lock).hexdigest():
        return binary
    staging = Path(tempfile.mkdtemp(prefix=".readme-generator-", dir=TOOLS_DIR if TOOLS_DIR.is_dir() else None))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(PACKAGE_DIR / name, staging / name)
        npm = shutil.which("npm")
        if npm is None:
            raise ToolError("npm is not on PATH (readme-generator-for-helm runs on Node.js)")
        proc = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=staging,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ToolError(f"npm ci for readme-generator-for-helm failed: {proc.stderr.strip()[-500:]}")
        (staging / ".lock-sha256").write_text(hashlib.sha256(lock).hexdigest())
        TOOLS_DIR.mkdir(exist_ok=True)
        shutil.rmtree(INSTALL_DIR, ignore_errors=True)
        staging.rename(INSTALL_DIR)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return binary


def render_readme(chart: Path) -> str:
    """The chart's README.md with its parameter tables regenerated from values.yaml."""
    binary = readme_generator()
    with tempfile.TemporaryDirectory(prefix="chart-readme-") as tmp:
        readme = Path(tmp) / "README.md"
        shutil.copy(chart / "README.md", readme)
        proc = subprocess.run(
            [str(binary), "--values", str(chart / "values.yaml"), "--readme", str(readme)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ToolError(f"readme-generator on {chart}: {(proc.stderr or proc.stdout).strip()[-800:]}")
        return readme.read_text()


def main(argv: list[str] | None = None) -> int:
    """Regenerate (or with --check, verify) the parameter tables of every chart's README."""
    parser = argparse.ArgumentParser(prog="python -m generator.tools.readme_generator", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a README is stale")
    parser.add_argument("charts", nargs="*", type=Path, help="chart directories (default: charts/*)")
    args = parser.parse_args(argv)
    charts = args.charts or sorted(p.parent for p in (REPO_ROOT / "charts").glob("*/Chart.yaml"))
    stale = 0
    for chart in charts:
        try:
            wanted = render_readme(chart)
        except ToolError as exc:
            print(f"chart-readme: {exc}", file=sys.stderr)
            return 2
        if (chart / "README.md").read_text() == wanted:
            continue
        if args.check:
            print(f"chart-readme: {chart}/README.md is stale: run make chart-readme", file=sys.stderr)
            stale += 1
        else:
            staged = chart / ".README.md.partial"
            staged.write_text(wanted)
            staged.replace(chart / "README.md")
            print(f"chart-readme: wrote {chart}/README.md")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
