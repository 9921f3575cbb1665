"""What the docs name exists: every ``make`` target and ``make`` variable they tell a reader to
use, every repository path they cite, and every relative link, in every Markdown page of the
repository. A renamed target or a moved file fails here instead of in a reader's terminal."""

from __future__ import annotations

import re
import subprocess

import pytest

from generator.paths import REPO_ROOT

PAGES = sorted(
    p.relative_to(REPO_ROOT).as_posix()
    for p in REPO_ROOT.rglob("*.md")
    if not any(part.startswith(".") or part in ("node_modules", "models") for part in p.relative_to(REPO_ROOT).parts)
)
#: Top-level directories whose paths the docs cite; a backticked path under one of them must exist.
CITED_ROOTS = ("generator", "services", "charts", "overlays", "argocd", "registry", "tests", "examples", "benchmarks")
MAKE_CALL = re.compile(r"(?:^|[`(]|\$ )make ((?:[a-z][a-z0-9-]*)(?: +[A-Z_]+=\S*)*)", re.MULTILINE)
PATH = re.compile(rf"`((?:{'|'.join(CITED_ROOTS)})/[A-Za-z0-9_./-]*)`")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _makefile_targets_and_variables() -> tuple[set[str], set[str]]:
    database = subprocess.run(
        ["make", "-pnrR", "-f", "Makefile", "--no-print-directory", "help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", database, re.MULTILINE))
    variables = set(re.findall(r"\$\(([A-Z_]+)\)", (REPO_ROOT / "Makefile").read_text()))
    variables |= set(re.findall(r"^([A-Z_]+) *[?:]?=", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE))
    return targets, variables


TARGETS, VARIABLES = _makefile_targets_and_variables()


def test_the_pages_and_the_makefile_were_found():
    assert "README.md" in PAGES and "charts/inference-service/README.md" in PAGES
    assert {"synth", "test", "bootstrap", "promote"} <= TARGETS and {"ENV", "VERSION"} <= VARIABLES


@pytest.mark.parametrize("page", PAGES)
def test_every_make_target_and_variable_a_page_names_exists(page: str):
    text = (REPO_ROOT / page).read_text()
    missing = []
    for call in MAKE_CALL.findall(text):
        target, *settings = call.split()
        if target not in TARGETS:
            missing.append(f"make {target}")
        missing += [f"make {target} {s}" for s in settings if s.split("=", 1)[0] not in VARIABLES]
    assert not missing, f"{page} names what the Makefile does not have: {sorted(set(missing))}"


@pytest.mark.parametrize("page", PAGES)
def test_every_path_and_link_a_page_cites_exists(page: str):
    text = (REPO_ROOT / page).read_text()
    missing = [path for path in PATH.findall(text) if not (REPO_ROOT / path.rstrip("/")).exists()]
    base = (REPO_ROOT / page).parent
    for target in LINK.findall(text):
        if "://" not in target and not target.startswith("mailto:") and not (base / target).exists():
            missing.append(target)
    assert not missing, f"{page} cites what does not exist: {sorted(set(missing))}"
