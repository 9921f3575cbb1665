"""The pull-request workflow runs what the repository promises, with the same pins as make validate."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from generator.validate import crd_schemas
from generator.validate.schemas import DEFAULT_K8S_VERSION

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "pr.yaml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _script() -> str:
    steps = [step for job in _workflow()["jobs"].values() for step in job["steps"]]
    return "\n".join(step.get("run", "") for step in steps)


def test_runs_on_pull_requests_with_pinned_actions():
    """Every action is pinned: a full version tag, or a commit SHA with its tag in a comment."""
    data = _workflow()
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in triggers
    uses = [step["uses"] for job in data["jobs"].values() for step in job["steps"] if "uses" in step]
    pins = dict(re.findall(r"uses:\s*(\S+@\S+)[ \t]*(#[^\n]*)?", WORKFLOW.read_text()))
    assert sorted(pins) == sorted(uses)
    for action, comment in pins.items():
        ref = action.split("@")[1]
        tag = re.fullmatch(r"v\d+\.\d+\.\d+", ref)
        sha = re.fullmatch(r"[0-9a-f]{40}", ref) and re.fullmatch(r"#\s*v\d+\.\d+\.\d+", comment.strip())
        assert tag or sha, f"{action}: pin a full version, or a commit SHA with its tag in a comment"


def test_freshness_validate_test_and_kubeconform_steps():
    script = _script()
    for needle in (
        "make synth",
        "git status --porcelain",
        "make validate",
        "make test",
        "make lint",
        "kubeconform -strict",
        '-kubernetes-version "$KUBERNETES_VERSION"',
        "setup-envtest",
        "make e2e",
    ):
        assert needle in script, needle
    assert script.index("make synth") < script.index("make validate")


def test_kubeconform_uses_the_repository_crd_schemas_and_pinned_version():
    data = _workflow()
    assert data["env"]["KUBERNETES_VERSION"] == f"{DEFAULT_K8S_VERSION}.0"
    template = "generator/validate/crds/schemas/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"
    assert template in _script()
    example = crd_schemas.schema_path("argoproj.io", "v1alpha1", "Application")
    assert example.as_posix().endswith(
        template.replace("{{.Group}}", "argoproj.io")
        .replace("{{.ResourceKind}}", "application")
        .replace("{{.ResourceAPIVersion}}", "v1alpha1")
    )
