"""Bitnami's readme-generator-for-helm, the ecosystem's tool for a chart README's parameter tables.

The tables are written from the ``## @section`` / ``## @param`` annotations in ``values.yaml``
(the tool also fails when a value has no annotation). The npm package is pinned with its lock in
``generator/tools/readme-generator/`` (the table's ``README_GENERATOR``) and installed with
``npm ci`` into ``.tools/``, once per lock (:mod:`generator.tools.npm`).

``python -m generator.tools.readme_generator [--check] [CHART_DIR...]`` rewrites each chart's
README (default: every chart under ``charts/``); ``--check`` writes nothing and exits 1 when a
README is stale. ``make chart-readme`` runs it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from generator.paths import REPO_ROOT
from generator.tools.base import ToolError
from generator.tools.table import README_GENERATOR


def render_readme(chart: Path) -> str:
    """The chart's README.md with its parameter tables regenerated from values.yaml."""
    binary = README_GENERATOR.path("readme-generator")
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
