"""The GitHub workflows run what the repository promises, through the same make targets, with
every action pinned by commit (zizmor, in pre-commit, checks the rest of their security)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from generator.paths import PREVIEW_WORKFLOW, REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yaml"))
#: Workflows that use no action and check nothing out (tests/previews checks the label workflow's).
NO_CHECKOUT = {Path(PREVIEW_WORKFLOW).name}
PR = next(path for path in WORKFLOWS if path.name == "pr.yaml")


def _steps(path: Path) -> list[dict]:
    return [step for job in yaml.safe_load(path.read_text())["jobs"].values() for step in job["steps"]]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_with_its_tag_in_a_comment(workflow):
    uses = [line.strip() for line in workflow.read_text().splitlines() if line.strip().startswith(("uses:", "- uses:"))]
    assert uses or workflow.name in NO_CHECKOUT
    loose = [u for u in uses if not re.fullmatch(r"(- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+){0,2}", u)]
    assert not loose, f"pin by full commit SHA and keep the tag in a comment: {loose}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_checkouts_do_not_persist_credentials(workflow):
    checkouts = [s for s in _steps(workflow) if s.get("uses", "").startswith("actions/checkout@")]
    assert checkouts or workflow.name in NO_CHECKOUT
    assert all(s.get("with", {}).get("persist-credentials") is False for s in checkouts)


def test_pull_requests_run_check_validate_with_kubeconform_lint_and_test():
    data = yaml.safe_load(PR.read_text())
    assert "pull_request" in data.get("on", data.get(True))  # YAML 1.1 reads the key `on` as true
    script = "\n".join(step.get("run", "") for step in _steps(PR))
    for needle in ("make check", "make validate", "make lint", "make test", 'echo "KUBECONFORM='):
        assert needle in script, needle
    assert script.index('echo "KUBECONFORM=') < script.index("make validate")
    assert "kubeconform -" not in script, "the workflow calls make validate, not a copy of its kubeconform call"
    assert "${{" not in script, "pass expressions through env:, never expanded inside a script"


# --- the supply chain (issue 29, item 1) ----------------------------------------------------------

RELEASE = next(path for path in WORKFLOWS if path.name == "release.yaml")
DEPENDABOT = REPO_ROOT / ".github" / "dependabot.yml"
MAIN_ONLY = "github.ref == 'refs/heads/main'"
ISSUER = "https://token.actions.githubusercontent.com"


def _jobs(path: Path) -> dict[str, dict]:
    return yaml.safe_load(path.read_text())["jobs"]


def _signs(job: dict) -> bool:
    """A job that asks Sigstore for a certificate: cosign sign or a GitHub attestation action."""
    return any(
        "cosign sign" in step.get("run", "") or step.get("uses", "").startswith("actions/attest")
        for step in job["steps"]
    )


def test_every_release_job_runs_from_main_only_in_the_release_environment():
    data = yaml.safe_load(RELEASE.read_text())
    assert data.get("on", data.get(True))["push"]["branches"] == ["main"]
    assert data["permissions"] == {}, "nothing by default: each job asks for what it needs"
    for name, job in data["jobs"].items():
        assert job.get("environment") == "release", name
        assert job.get("if", "").startswith(MAIN_ONLY), f"{name}: workflow_dispatch can name any branch"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_id_token_write_only_where_signing_happens(workflow):
    data = yaml.safe_load(workflow.read_text())
    assert "id-token" not in (data.get("permissions") or {}), "never workflow-wide"
    for name, job in data["jobs"].items():
        granted = (job.get("permissions") or {}).get("id-token") == "write"
        assert granted == _signs(job), f"{name}: id-token: write exactly where cosign or an attestation signs"


def test_release_permissions_are_least_privilege_per_job():
    jobs = _jobs(RELEASE)
    assert jobs["build"]["permissions"] == {"contents": "read", "packages": "write"}
    assert jobs["attest"]["permissions"] == {
        "contents": "read",
        "packages": "write",
        "id-token": "write",
        "attestations": "write",
    }
    # The pull requests are pushed and opened with the release app's token, not GITHUB_TOKEN.
    assert jobs["pin-dev"]["permissions"] == {"contents": "read"}
    assert jobs["model"]["permissions"] == {"contents": "read", "packages": "write"}


def test_each_pushed_image_is_signed_attested_and_verified_by_its_digest():
    jobs = _jobs(RELEASE)
    build, attest = jobs["build"], jobs["attest"]
    assert attest["needs"] == "build" and "attest" in jobs["pin-dev"]["needs"], "dev pins only verified images"
    assert "make images" not in str(attest), "the signing job runs no build of the repository's code"
    push = next(step for step in build["steps"] if "make push-images" in step.get("run", ""))
    matrix = attest["strategy"]["matrix"]["include"]
    assert {entry["image"] for entry in matrix} == {"server", "trainer"}
    for entry in matrix:
        image = entry["image"]
        assert entry["digest"] == f"${{{{ needs.build.outputs.{image}-digest }}}}"
        assert build["outputs"][f"{image}-digest"] == f"${{{{ steps.{push['id']}.outputs.{image} }}}}"
        assert entry["repository"] == f"${{{{ needs.build.outputs.{image}-repository }}}}"
    assert attest["env"]["IMAGE"] == "${{ matrix.repository }}" and attest["env"]["DIGEST"] == "${{ matrix.digest }}"

    steps = attest["steps"]

    def index(predicate) -> int:
        found = [i for i, step in enumerate(steps) if predicate(step)]
        assert len(found) == 1, found
        return found[0]

    def uses(prefix: str) -> int:
        return index(lambda step: step.get("uses", "").startswith(prefix))

    installer = uses("sigstore/cosign-installer@")
    sign = index(lambda step: step.get("run", "").strip() == 'cosign sign --yes "$IMAGE@$DIGEST"')
    sbom = uses("anchore/sbom-action@")
    attest_sbom = uses("actions/attest-sbom@")
    provenance = uses("actions/attest-build-provenance@")
    verify = index(lambda step: "cosign verify " in step.get("run", ""))
    gh_verify = index(lambda step: "gh attestation verify" in step.get("run", ""))
    assert installer < sign < verify and sbom < attest_sbom < gh_verify and provenance < gh_verify

    subject = {"subject-name": "${{ matrix.repository }}", "subject-digest": "${{ matrix.digest }}"}
    for i in (attest_sbom, provenance):
        assert {**steps[i]["with"], **subject} == steps[i]["with"] and steps[i]["with"]["push-to-registry"] is True
    assert steps[sbom]["with"]["image"] == "${{ matrix.repository }}@${{ matrix.digest }}"
    assert steps[sbom]["with"]["format"] == "spdx-json"
    assert steps[attest_sbom]["with"]["sbom-path"] == steps[sbom]["with"]["output-file"]

    cosign_verify = steps[verify]["run"]
    assert "--certificate-identity-regexp" in cosign_verify and f"--certificate-oidc-issuer {ISSUER}" in cosign_verify
    assert r"/\.github/workflows/release\.yaml@refs/heads/main$" in cosign_verify
    assert "${GITHUB_REPOSITORY//./\\\\.}" in cosign_verify, "the repository's dots are escaped in the regexp"
    gh = steps[gh_verify]
    assert gh["env"] == {"GH_TOKEN": "${{ github.token }}"}
    for needle in (
        '"oci://$IMAGE@$DIGEST"',
        '--repo "$GITHUB_REPOSITORY"',
        '--signer-workflow "$GITHUB_REPOSITORY/.github/workflows/release.yaml"',
        "https://slsa.dev/provenance/v1",
        "https://spdx.dev/Document/v2.3",
    ):
        assert needle in gh["run"], needle


def test_registry_logins_take_no_long_lived_password_by_default():
    for name, job in _jobs(RELEASE).items():
        logins = [step for step in job["steps"] if step.get("uses", "").startswith("docker/login-action@")]
        if not logins:
            continue
        ghcr = [step for step in logins if step["with"]["registry"] == "ghcr.io"]
        assert len(ghcr) == 1, name
        assert ghcr[0]["with"]["password"] == "${{ github.token }}", f"{name}: GHCR takes the job's own token"
        assert (job["permissions"] or {}).get("packages") == "write", name
        for step in job["steps"]:
            if re.search(r"secrets\.\w*PASSWORD", yaml.safe_dump(step)):
                assert "vars.REGISTRY_LOGIN == 'password'" in step.get("if", ""), f"{name}: a password is opt-in only"
        checks = [step for step in job["steps"] if "::error::no registry login" in step.get("run", "")]
        if name != "attest":  # the build job's check already failed the release for a missing login
            assert len(checks) == 1, f"{name}: a missing login fails with a message, before any push"


def test_release_pull_requests_are_opened_with_the_release_app_token():
    for name, job in _jobs(RELEASE).items():
        steps = job["steps"]
        opens = [
            i for i, step in enumerate(steps) if step.get("uses", "").startswith("peter-evans/create-pull-request@")
        ]
        if not opens:
            continue
        app = [i for i, step in enumerate(steps) if step.get("uses", "").startswith("actions/create-github-app-token@")]
        assert len(opens) == len(app) == 1 and app[0] < opens[0], name
        token = steps[app[0]]
        assert token["with"]["app-id"] == "${{ vars.RELEASE_APP_ID }}"
        assert token["with"]["private-key"] == "${{ secrets.RELEASE_APP_PRIVATE_KEY }}"
        assert steps[opens[0]]["with"]["token"] == f"${{{{ steps.{token['id']}.outputs.token }}}}"
        guard = steps[0]
        assert "RELEASE_APP_ID" in guard["env"]["APP_ID"] and "exit 1" in guard["run"], f"{name}: no silent fallback"
        assert "contents" not in job["permissions"] or job["permissions"]["contents"] == "read"


def test_dependabot_covers_actions_pip_and_docker_weekly_in_groups():
    config = yaml.safe_load(DEPENDABOT.read_text())
    assert config["version"] == 2
    updates = {update["package-ecosystem"]: update for update in config["updates"]}
    assert set(updates) == {"github-actions", "pip", "docker"}
    for update in updates.values():
        assert update["schedule"]["interval"] == "weekly" and update["groups"]

    def directories(update: dict) -> set[str]:
        return set(update.get("directories", [update.get("directory")]))

    assert directories(updates["github-actions"]) == {"/"}
    locks = {"/" + p.parent.relative_to(REPO_ROOT).as_posix() for p in REPO_ROOT.glob("requirements/*.txt")}
    locks |= {"/" + p.parent.relative_to(REPO_ROOT).as_posix() for p in REPO_ROOT.glob("services/*/requirements.txt")}
    assert directories(updates["pip"]) == locks
    dockerfiles = {"/" + p.parent.relative_to(REPO_ROOT).as_posix() for p in REPO_ROOT.glob("services/*/Dockerfile")}
    assert len(dockerfiles) == 2 and directories(updates["docker"]) == dockerfiles


def test_zizmor_runs_online_in_pull_requests_and_offline_in_pre_commit():
    online = [step for step in _steps(PR) if step.get("run", "").startswith(".venv/bin/zizmor")]
    assert len(online) == 1 and "--offline" not in online[0]["run"]
    assert online[0]["env"] == {"GH_TOKEN": "${{ github.token }}"}
    hooks = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    zizmor = next(hook for hook in hooks if hook["id"] == "zizmor")
    assert "--offline" in zizmor["entry"] and re.search(zizmor["files"], ".github/dependabot.yml")


def test_every_push_to_main_publishes_the_insights_of_the_whole_history():
    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/insights.yaml").read_text())
    assert workflow[True]["push"]["branches"] == ["main"]  # PyYAML reads the key `on` as True
    steps = workflow["jobs"]["insights"]["steps"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0, "a shallow clone has no history to count"
    assert any(s.get("run") == "make insights" for s in steps)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["path"] == "build/insights/" and upload["with"]["if-no-files-found"] == "error"


def test_the_release_workflow_commits_carry_the_commands_trailers():
    text = (REPO_ROOT / ".github/workflows/release.yaml").read_text()
    assert text.count("ML_GITOPS_TRAILERS_FILE:") >= 3  # both set-image steps and the model step
    assert "commit-message: ${{ steps.message.outputs.text }}" in text
    assert "commit-message: ${{ steps.model.outputs.message }}" in text
