"""make lint: every pre-commit hook runs offline from .venv and really fails on a bad input
(.ci/run runs `make lint` on the repository itself), and helm lint covers the charts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from generator import lint
from generator.paths import REPO_ROOT

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]


@pytest.fixture
def hooks_repo(tmp_path: Path) -> Path:
    """A git repository with the repository's pre-commit and linter configuration and .venv."""
    for name in (".pre-commit-config.yaml", ".yamllint.yaml", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    (tmp_path / ".venv").symlink_to(REPO_ROOT / ".venv")
    subprocess.run([*GIT, "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def run_hook(repo: Path, hook: str, relpath: str, content: str) -> subprocess.CompletedProcess:
    path = repo / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    subprocess.run([*GIT, "-C", str(repo), "add", relpath], check=True)
    return subprocess.run(
        [str(REPO_ROOT / ".venv/bin/pre-commit"), "run", hook, "--files", relpath],
        cwd=repo,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(repo), "PRE_COMMIT_HOME": str(repo / ".pre-commit-cache")},
    )


@pytest.mark.parametrize(
    ("hook", "relpath", "content", "says"),
    [
        ("yamllint", "bad.yaml", "a: 1\na: 2\n", 'duplication of key "a" in mapping'),
        ("hadolint", "Dockerfile", "FROM python:latest\nRUN cd /tmp && pip install flask\n", "DL3007"),
        ("check-github-workflows", ".github/workflows/bad.yaml", "on: push\njobs:\n  a:\n    stepz: []\n", "bad.yaml"),
        (
            "zizmor",
            ".github/workflows/ci.yaml",
            "on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
            "      - uses: actions/checkout@v4\n        with:\n          persist-credentials: false\n",
            "unpinned-uses",
        ),
        ("ruff", "bad.py", "import os\n", "F401"),
        ("ruff-format", "ugly.py", "x = {  'a':1 }\n", "1 file would be reformatted"),
    ],
)
def test_each_hook_fails_on_a_bad_file(hooks_repo, hook, relpath, content, says):
    result = run_hook(hooks_repo, hook, relpath, content)
    assert result.returncode == 1, result.stdout + result.stderr
    assert says in result.stdout, result.stdout


def test_yamllint_leaves_helm_templates_to_helm_lint(hooks_repo):
    result = run_hook(hooks_repo, "yamllint", "charts/x/templates/a.yaml", "{{- if .Values.a }}\nb: 1\n{{- end }}\n")
    assert result.returncode == 0 and "(no files to check)" in result.stdout, result.stdout


def test_helm_lint_passes_the_charts_and_fails_a_broken_one(tmp_path, capsys):
    assert lint.main([]) == 0
    chart = tmp_path / "charts" / "broken"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: broken\nversion: 0.1.0\n")
    (chart / "templates" / "x.yaml").write_text("kind: ConfigMap\nmetadata:\n  name: {{ .Values.missing.key }}\n")
    assert lint.main(["--root", str(tmp_path)]) == 1
    assert "helm lint --strict charts/broken: FAILED" in capsys.readouterr().out


def test_mypy_checks_services_like_the_generator(hooks_repo):
    """The mypy hook reads its files from pyproject.toml: services/ is held to the same rules."""
    for typed in ("generator", "examples"):  # the other [tool.mypy] files, which mypy needs to exist
        (hooks_repo / typed).mkdir()
        (hooks_repo / typed / "__init__.py").write_text("")
    result = run_hook(hooks_repo, "mypy", "services/untyped.py", "def predict(batch):\n    return batch\n")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "services/untyped.py:1: error: Function is missing a type annotation  [no-untyped-def]" in result.stdout
