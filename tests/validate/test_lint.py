"""make lint: the repository itself is clean (this is how the Dockerfiles get hadolinted and
the workflow schema-checked in make test), and each linter really fails on a bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

from generator import lint

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_repository_passes_make_lint(capsys):
    code = lint.main([])
    out = capsys.readouterr().out
    assert code == 0, out


def test_helm_templates_are_not_yamllinted_but_values_are():
    files = [
        "charts/x/templates/deployment.yaml",
        "charts/x/values.yaml",
        "overlays/dev/kustomization.yaml",
        "services/inference/Dockerfile",
        "services/inference/Dockerfile.dockerignore",
        "services/training/Dockerfile.gpu",
        ".github/workflows/pr.yaml",
        "README.md",
    ]
    assert lint.yaml_targets(files) == [
        "charts/x/values.yaml",
        "overlays/dev/kustomization.yaml",
        ".github/workflows/pr.yaml",
    ]
    assert lint.dockerfiles(files) == ["services/inference/Dockerfile", "services/training/Dockerfile.gpu"]
    assert lint.workflows(files) == [".github/workflows/pr.yaml"]


def _tmp_repo(tmp_path: Path) -> Path:
    shutil.copy(REPO_ROOT / ".yamllint.yaml", tmp_path / ".yamllint.yaml")
    return tmp_path


def _outcome(root: Path, name: str) -> lint.Outcome:
    return next(o for o in lint.lint(root) if o.name == name)


def test_yamllint_fails_on_a_bad_file(tmp_path):
    root = _tmp_repo(tmp_path)
    (root / "bad.yaml").write_text("a: 1\na: 2\nb:   [1,2]   \n")
    outcome = _outcome(root, "yamllint")
    assert outcome.returncode == 1
    assert 'bad.yaml:2:1: [error] duplication of key "a" in mapping (key-duplicates)' in outcome.output


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path):
    root = _tmp_repo(tmp_path)
    (root / "Dockerfile").write_text("FROM python:latest\nRUN cd /tmp && pip install flask\n")
    outcome = _outcome(root, "hadolint")
    assert outcome.returncode == 1
    assert "DL3007" in outcome.output  # using latest


def test_workflow_schema_fails_on_a_bad_workflow(tmp_path):
    root = _tmp_repo(tmp_path)
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "bad.yaml").write_text("on: push\njobs:\n  a:\n    stepz: []\n")
    outcome = _outcome(root, "check-jsonschema")
    assert outcome.returncode == 1
