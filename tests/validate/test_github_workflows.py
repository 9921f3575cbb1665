"""The GitHub workflows run what the repository promises, through the same make targets, with
every action pinned by commit (zizmor, in pre-commit, checks the rest of their security)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from generator.paths import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yaml"))
PR = next(path for path in WORKFLOWS if path.name == "pr.yaml")


def _steps(path: Path) -> list[dict]:
    return [step for job in yaml.safe_load(path.read_text())["jobs"].values() for step in job["steps"]]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_with_its_tag_in_a_comment(workflow):
    uses = [line.strip() for line in workflow.read_text().splitlines() if line.strip().startswith(("uses:", "- uses:"))]
    assert uses
    loose = [u for u in uses if not re.fullmatch(r"(- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+){0,2}", u)]
    assert not loose, f"pin by full commit SHA and keep the tag in a comment: {loose}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_checkouts_do_not_persist_credentials(workflow):
    checkouts = [s for s in _steps(workflow) if s.get("uses", "").startswith("actions/checkout@")]
    assert checkouts and all(s.get("with", {}).get("persist-credentials") is False for s in checkouts)


def test_pull_requests_run_check_validate_with_kubeconform_lint_and_test():
    data = yaml.safe_load(PR.read_text())
    assert "pull_request" in data.get("on", data.get(True))  # YAML 1.1 reads the key `on` as true
    script = "\n".join(step.get("run", "") for step in _steps(PR))
    for needle in ("make check", "make validate", "make lint", "make test", 'echo "KUBECONFORM='):
        assert needle in script, needle
    assert script.index('echo "KUBECONFORM=') < script.index("make validate")
    assert "kubeconform -" not in script, "the workflow calls make validate, not a copy of its kubeconform call"
    assert "${{" not in script, "pass expressions through env:, never expanded inside a script"
