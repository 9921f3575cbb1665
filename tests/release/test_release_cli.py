"""The commands as make runs them (`python -m generator <command> ...`, a separate process), and the
release workflow that CI runs after a merge."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml
from release_support import TAG_A, Repo

from generator.paths import REPO_ROOT


def cli(repo: Repo, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ML_GITOPS_ROOT": str(repo.root), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    env.pop("ML_GITOPS_ALLOW_DIRTY", None)
    return subprocess.run(
        [sys.executable, "-m", "generator", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_make_entry_point_passes_options_through(repo: Repo):
    # `make set-image ENV=dev IMAGE=server TAG=...` runs exactly this command line.
    result = cli(repo, "set-image", "--env", "dev", "--image", "server", "--tag", TAG_A)
    assert result.returncode == 0, (
        "python -m generator drops options after a delegated command (argparse.REMAINDER); "
        f"generator/__main__.py must hand argv to the release command module unchanged:\n{result.stderr}"
    )
    assert f'newTag: "{TAG_A}"' in (repo.root / "overlays/dev/kustomization.yaml").read_text()
    refused = cli(repo, "canary", "--env", "prod-canary", "--weight", "101")
    assert refused.returncode == 2 and "from 0 to 100" in refused.stderr


def test_status_runs_as_a_process(repo: Repo):
    result = cli(repo, "status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("ENVIRONMENT")


def test_release_workflow_pins_both_images_in_dev_and_opens_a_pull_request():
    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/release.yaml").read_text())
    trigger = workflow[True] if True in workflow else workflow["on"]  # PyYAML reads `on` as a boolean
    assert trigger["push"]["branches"] == ["main"] and trigger["push"]["paths"] == ["services/**"]
    assert workflow["permissions"] == {}
    build, pin = workflow["jobs"]["build"], workflow["jobs"]["pin-dev"]
    assert build["permissions"] == {"contents": "read", "packages": "write"}
    # The pull request is opened with the release app's token; dev pins only signed, verified images.
    assert pin["permissions"] == {"contents": "read"} and pin["needs"] == ["build", "attest"]
    builds = [step.get("run", "") for step in build["steps"]]
    assert "make images" in builds and "make test-images" in builds, "the release builds as developers and CI do"
    assert builds.index("make images") < builds.index("make test-images")
    assert any("make push-images" in run for run in builds)
    assert {"server-digest", "trainer-digest"} <= set(build["outputs"])
    runs = [step.get("run", "") for step in pin["steps"]]
    assert 'make set-image ENV=dev IMAGE=server DIGEST="$DIGEST"' in runs  # pinned by the pushed digest
    assert 'make set-image ENV=dev IMAGE=trainer DIGEST="$DIGEST"' in runs
    digests = {step["env"]["DIGEST"] for step in pin["steps"] if "DIGEST" in step.get("env", {})}
    assert digests == {"${{ needs.build.outputs.server-digest }}", "${{ needs.build.outputs.trainer-digest }}"}
    uses = [step["uses"] for job in (build, pin) for step in job["steps"] if "uses" in step]
    assert any(u.startswith("docker/login-action@") for u in uses)
    assert any(u.startswith("peter-evans/create-pull-request@") for u in uses)
    # GHCR takes the job's own token; a registry password is opt-in (tests/validate/test_github_workflows.py).
    logins = [step for step in build["steps"] if step.get("uses", "").startswith("docker/login-action@")]
    assert any(step["with"]["password"] == "${{ github.token }}" for step in logins)
