"""``make preview-render PR= SHA=`` on a real git repository with the real kustomize: what Argo CD
would deploy for a pull request validates; a pull request that reaches past its preview's bounds
is refused naming the object; bad arguments exit 2 with one line and write nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from preview_support import PR, add_to_preview, git, manifests, preview_render, pull_request

from generator.paths import REPO_ROOT

SECRET = "apiVersion: v1\nkind: Secret\nmetadata: {name: leak}\nstringData: {token: x}\n"  # pragma: allowlist secret
JOB = """apiVersion: batch/v1
kind: Job
metadata: {name: train-here}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: t, image: registry.example.com/ml/trainer:0.1.0}]
"""
POLICY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all}
spec: {podSelector: {}, ingress: [{}], policyTypes: [Ingress]}
"""
CLUSTER_ROLE = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: preview-admin}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
"""
ELSEWHERE = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: planted, namespace: ml-prod}\ndata: {a: b}\n"


def test_a_pull_requests_preview_renders_as_argo_cd_would_and_validates(repo: Path, tmp_path: Path):
    head = git(repo, "rev-parse", "HEAD").strip()
    result = preview_render(repo, PR, head, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    docs = manifests(tmp_path / "out")
    apps = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Application"}
    assert apps["mnist-platform-pr-7"]["spec"]["source"]["targetRevision"] == head
    assert apps["mnist-platform-pr-7-guardrails"]["spec"]["source"]["targetRevision"] == "main"
    deployed = [doc for doc in docs if doc["kind"] != "Application"]
    assert {doc["metadata"].get("namespace", "pr-7") for doc in deployed} == {"pr-7"}
    assert [doc["metadata"]["name"] for doc in deployed if doc["kind"] == "Namespace"] == ["pr-7"]
    assert "validates" in result.stderr.splitlines()[-1]


def test_the_staging_pin_flows_into_the_preview(repo: Path, tmp_path: Path):
    kustomization = repo / "overlays/staging/kustomization.yaml"
    digest = "sha256:" + "c3" * 32
    data = yaml.safe_load(kustomization.read_text())
    old = next(i["digest"] for i in data["images"] if i["name"].endswith("inference-server"))
    kustomization.write_text(kustomization.read_text().replace(old, digest, 1))
    head = pull_request(repo, "staging: a new server image")
    result = preview_render(repo, PR, head, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    (deployment,) = [doc for doc in manifests(tmp_path / "out") if doc["kind"] == "Deployment"]
    images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert f"registry.example.com/ml/inference-server@{digest}" in images


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("secret.yaml", SECRET, "Secret/leak: kind: a preview's workload never holds a Secret"),
        ("job.yaml", JOB, "Job/train-here: kind: a preview's workload never holds a Job"),
        ("policy.yaml", POLICY, "NetworkPolicy/allow-all: kind: AppProject 'ml-platform-previews' does not permit it"),
        ("role.yaml", CLUSTER_ROLE, "ClusterRole/preview-admin: metadata.name: cluster-scoped"),
    ],
)
def test_a_workload_reaching_past_its_preview_is_refused_naming_the_object(repo, tmp_path, name, text, says):
    add_to_preview(repo, name, text)
    if name == "policy.yaml":
        # A hostile pull request edits overlays/preview too: out goes the patch that drops
        # staging's NetworkPolicies (and would drop the one it adds).
        kustomization = repo / "overlays/preview/kustomization.yaml"
        kustomization.write_text(kustomization.read_text().replace("|NetworkPolicy", ""))
    head = pull_request(repo, f"preview: add {name}")
    result = preview_render(repo, PR, head, tmp_path / "out")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert any(line.startswith("preview pr-7: ") and says in line for line in result.stderr.splitlines()), result.stderr


def test_an_object_written_for_another_namespace_lands_in_the_previews(repo, tmp_path):
    """Argo CD's kustomize.namespace (set on the default branch) rewrites every namespace."""
    add_to_preview(repo, "elsewhere.yaml", ELSEWHERE)
    head = pull_request(repo, "preview: plant a ConfigMap in ml-prod")
    result = preview_render(repo, PR, head, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    (planted,) = [doc for doc in manifests(tmp_path / "out") if doc["metadata"]["name"] == "planted"]
    assert planted["metadata"]["namespace"] == "pr-7"


@pytest.mark.parametrize("pr", ["0", "-3", "abc", "7x", "", "\u0663", "1e3"])
def test_a_pr_that_is_not_a_positive_integer_exits_2_with_one_line_and_writes_nothing(repo, tmp_path, pr):
    result = preview_render(repo, pr, "HEAD", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "PR must be" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_unknown_sha_exits_2_with_one_line_and_writes_nothing(repo, tmp_path):
    result = preview_render(repo, PR, "0" * 40, tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is not a revision" in result.stderr
    assert not (tmp_path / "out").exists()


def test_without_previews_on_the_default_branch_there_is_nothing_to_render(repo, tmp_path):
    platform = repo / "platform.yaml"
    text = platform.read_text()
    start, end = text.index("previews:\n"), text.index("\nargocd:\n")
    platform.write_text(text[:start] + text[end + 1 :])
    git(repo, "commit", "-q", "-am", "no previews")
    result = preview_render(repo, PR, "HEAD", tmp_path / "out")
    assert result.returncode == 2 and "no previews section" in result.stderr


def test_make_validate_renders_the_working_trees_preview_and_names_what_it_refuses(repo):
    add_to_preview(repo, "secret.yaml", SECRET)
    result = subprocess.run(
        [sys.executable, "-m", "generator", "validate", "--root", str(repo), "--no-secrets", "--no-freshness"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert (
        "preview: Secret/leak: kind: a preview's workload never holds a Secret (issue 28) [preview-workload-kinds]"
        in lines
    )
