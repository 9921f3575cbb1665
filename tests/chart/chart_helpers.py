"""Helpers for the inference-service chart suite: the real helm binary and cached renders."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import pytest
import yaml

from generator.paths import REPO_ROOT
from generator.tools import helm_path

CHART = REPO_ROOT / "charts" / "inference-service"
VALUES_DIR = Path(__file__).resolve().parent / "values"
RELEASE = "mnist"
NAMESPACE = "serving"


def _find_helm() -> str:
    """$HELM, else the repository's bootstrapped helm (generator.tools)."""
    return os.environ.get("HELM") or helm_path()


@lru_cache(maxsize=1)
def helm() -> str:
    return _find_helm()


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def docs(self) -> list[dict]:
        assert self.returncode == 0, self.stderr
        return [d for d in yaml.safe_load_all(self.stdout) if d]


def run_helm(*args: str) -> Result:
    proc = subprocess.run(
        [helm(), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "HELM_NO_PLUGINS": "1"},
        timeout=60,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@cache
def _template(args: tuple[str, ...]) -> Result:
    return run_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)


def template(*sets: str, values: str | None = None, release: str = RELEASE) -> Result:
    """`helm template` with `--set` for each of sets (cached: renders are pure)."""
    args: list[str] = []
    if values:
        args += ["--values", str(VALUES_DIR / values)]
    for s in sets:
        args += ["--set", s]
    if release != RELEASE:
        return run_helm("template", release, str(CHART), "--namespace", NAMESPACE, *args)
    return _template(tuple(args))


def render(*sets: str, values: str | None = None, release: str = RELEASE) -> list[dict]:
    """Rendered objects; fails the test with helm's stderr when the render fails."""
    result = template(*sets, values=values, release=release)
    if result.returncode != 0:
        pytest.fail(f"helm template {' '.join(sets)} failed:\n{result.stderr}")
    return result.docs


def by_kind(docs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]
