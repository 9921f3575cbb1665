"""The generated previews (issue 28, item 2), read from the files ``make synth`` wrote: the two
ApplicationSets, the two AppProjects, the trimmed ``overlays/preview`` and the guardrails."""

from __future__ import annotations

import pytest
import yaml

from generator.config import ConfigError, Platform, load_config
from generator.paths import ARGOCD_ADMIN_DIR, GUARDRAILS_OVERLAY, PREVIEW_OVERLAY, REPO_ROOT
from generator.synthesis.previews import WORKLOAD_KINDS
from generator.tools import render_overlay
from generator.validate.preview import WORKLOAD_NEVER, PullRequest, TemplateError, expand, generated_applications


@pytest.fixture(scope="module")
def platform() -> Platform:
    return load_config(REPO_ROOT / "platform.yaml")


@pytest.fixture(scope="module")
def admin() -> dict[tuple[str, str], dict]:
    """argocd/admin/'s objects by (kind, name)."""
    objects = {}
    for path in (REPO_ROOT / ARGOCD_ADMIN_DIR).glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def _appsets(admin: dict) -> dict[str, dict]:
    return {name: doc for (kind, name), doc in admin.items() if kind == "ApplicationSet"}


def test_both_application_sets_take_labelled_pull_requests_as_go_templates_that_fail_on_a_missing_key(admin, platform):
    appsets = _appsets(admin)
    assert set(appsets) == {f"{platform.name}-previews", f"{platform.name}-preview-guardrails"}
    for appset in appsets.values():
        spec = appset["spec"]
        assert spec["goTemplate"] is True and spec["goTemplateOptions"] == ["missingkey=error"]
        (generator,) = spec["generators"]
        github = generator["pullRequest"]["github"]
        assert github["labels"] == [platform.previews.label]
        assert (github["owner"], github["repo"]) == platform.preview_repository == ("ml", "ml-gitops")
        template = spec["template"]
        assert "resources-finalizer.argocd.argoproj.io" in template["metadata"]["finalizers"]
        # Names and namespaces from the number only: a branch name is the author's to choose.
        assert "{{.number}}" in template["metadata"]["name"]
        assert template["spec"]["destination"]["namespace"] == "pr-{{.number}}"
        assert template["spec"]["source"]["kustomize"]["namespace"] == "pr-{{.number}}"
        assert "branch" not in yaml.safe_dump(template)


def test_the_workload_runs_the_head_commit_and_the_guardrails_the_default_branch(admin, platform):
    appsets = _appsets(admin)
    workload = appsets[f"{platform.name}-previews"]["spec"]["template"]["spec"]
    guardrails = appsets[f"{platform.name}-preview-guardrails"]["spec"]["template"]["spec"]
    assert workload["source"]["targetRevision"] == "{{.head_sha}}"
    assert workload["source"]["path"] == PREVIEW_OVERLAY
    assert workload["project"] == platform.argocd.previews_project
    assert guardrails["source"]["targetRevision"] == platform.argocd.target_revision == "main"
    assert guardrails["source"]["path"] == GUARDRAILS_OVERLAY
    assert guardrails["project"] == platform.argocd.guardrails_project


def test_the_previews_project_writes_pr_namespaces_and_a_short_list_of_kinds(admin, platform):
    spec = admin[("AppProject", platform.argocd.previews_project)]["spec"]
    assert [d["namespace"] for d in spec["destinations"]] == ["pr-*"]
    kinds = {(k["group"], k["kind"]) for k in spec["namespaceResourceWhitelist"]}
    assert kinds == set(WORKLOAD_KINDS)
    assert not {kind for _, kind in kinds} & WORKLOAD_NEVER
    assert "clusterResourceWhitelist" not in spec
    (impersonated,) = spec["destinationServiceAccounts"]
    assert impersonated["namespace"] == "pr-*"
    assert impersonated["defaultServiceAccount"] == f"argocd:{platform.argocd.previews_project}-deployer"


def test_the_guardrails_project_owns_namespaces_named_pr_and_their_limits_only(admin, platform):
    spec = admin[("AppProject", platform.argocd.guardrails_project)]["spec"]
    assert [d["namespace"] for d in spec["destinations"]] == ["pr-*"]
    assert spec["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace", "name": "pr-*"}]
    kinds = {k["kind"] for k in spec["namespaceResourceWhitelist"]}
    assert kinds == {"LimitRange", "NetworkPolicy", "ResourceQuota", "RoleBinding"}


def test_the_workload_deployer_holds_only_the_workload_kinds_and_is_bound_per_preview_namespace(admin, platform):
    name = f"{platform.argocd.previews_project}-deployer"
    role = admin[("ClusterRole", name)]
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert resources == {"configmaps", "services", "deployments"}
    assert ("ClusterRoleBinding", name) not in admin  # bound by the guardrails, in pr-<N> alone
    binding = yaml.safe_load((REPO_ROOT / GUARDRAILS_OVERLAY / "rolebinding.yaml").read_text())
    assert binding["roleRef"]["name"] == name
    guard = admin[("ClusterRole", f"{platform.argocd.guardrails_project}-deployer")]
    bind = [rule for rule in guard["rules"] if "bind" in rule["verbs"]]
    assert bind == [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "resourceNames": [name],
            "verbs": ["bind"],
        }
    ]


def test_the_preview_overlay_serves_the_staging_pins_with_one_replica_and_no_token(platform):
    preview = yaml.safe_load_all(render_overlay(REPO_ROOT / PREVIEW_OVERLAY))
    staging = list(yaml.safe_load_all(render_overlay(REPO_ROOT / "overlays" / platform.previews.pin_from)))
    docs = list(preview)
    assert {doc["kind"] for doc in docs} <= {kind for _, kind in WORKLOAD_KINDS}
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    (staged,) = [doc for doc in staging if doc["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    assert pod["serviceAccountName"] == "default" and pod["automountServiceAccountToken"] is False
    images = [c["image"] for c in pod["containers"] + pod.get("initContainers", [])]
    staged_pod = staged["spec"]["template"]["spec"]
    assert images == [c["image"] for c in staged_pod["containers"] + staged_pod.get("initContainers", [])]
    release = {doc["metadata"]["name"]: doc["data"] for doc in docs if doc["kind"] == "ConfigMap"}
    staged_release = {doc["metadata"]["name"]: doc["data"] for doc in staging if doc["kind"] == "ConfigMap"}
    assert {k: v for k, v in release.items() if "release" in k} == {
        k: v for k, v in staged_release.items() if "release" in k
    }


def test_the_guardrails_quota_allows_no_gpu_job_load_balancer_or_node_port():
    quota = yaml.safe_load((REPO_ROOT / GUARDRAILS_OVERLAY / "resourcequota.yaml").read_text())["spec"]["hard"]
    for key in ("requests.nvidia.com/gpu", "count/jobs.batch", "services.loadbalancers", "services.nodeports"):
        assert quota[key] == "0"
    namespace = yaml.safe_load((REPO_ROOT / GUARDRAILS_OVERLAY / "namespace.yaml").read_text())
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_a_template_key_the_generator_does_not_give_is_an_error_as_with_missingkey_error():
    params = PullRequest(7, "a" * 40, "main", ("preview",)).params()
    assert expand({"name": "x-{{.number}}", "rev": ["{{ .head_sha }}"]}, params) == {"name": "x-7", "rev": ["a" * 40]}
    with pytest.raises(TemplateError, match="'branch_slug'"):
        expand("pr-{{.branch_slug}}", params)
    with pytest.raises(TemplateError, match="only"):
        expand('{{ .number | printf "%s" }}', params)


def test_an_application_set_without_missingkey_error_is_refused(admin, platform):
    appset = yaml.safe_load(yaml.safe_dump(_appsets(admin)[f"{platform.name}-previews"]))
    del appset["spec"]["goTemplateOptions"]
    with pytest.raises(TemplateError, match="missingkey=error"):
        generated_applications([appset], PullRequest(7, "a" * 40, "main", (platform.previews.label,)))


def test_an_unlabelled_pull_request_gets_no_preview(admin):
    assert generated_applications(_appsets(admin).values(), PullRequest(7, "a" * 40, "main", ("other",))) == []


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        ("idleDays: 7", "previews.idleDays"),
        ("pinFrom: staging", "previews.pinFrom"),
        ("label: preview", "previews.label"),
    ],
)
def test_a_bad_previews_value_is_refused_naming_the_key(tmp_path, edit, says):
    bad = {"idleDays: 7": "idleDays: 0", "pinFrom: staging": "pinFrom: dev", "label: preview": "label: ''"}[edit]
    text = (REPO_ROOT / "platform.yaml").read_text()
    assert edit in text
    (tmp_path / "platform.yaml").write_text(text.replace(edit, bad, 1))
    (tmp_path / "overlays").symlink_to(REPO_ROOT / "overlays")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "platform.yaml")
    assert any(f": {says}:" in line for line in caught.value.problems), caught.value.problems


def test_the_label_workflow_runs_no_pull_request_code_with_least_permissions(platform):
    from generator.paths import PREVIEW_WORKFLOW

    text = (REPO_ROOT / PREVIEW_WORKFLOW).read_text()
    data = yaml.safe_load(text)
    on = data.get("on", data.get(True))  # YAML 1.1 reads the key `on` as true
    assert set(on["pull_request_target"]["types"]) == {"opened", "reopened", "synchronize", "labeled"}
    assert "schedule" in on
    assert data["permissions"] == {}
    for job in data["jobs"].values():
        assert job["permissions"] == {"pull-requests": "write"}
        for step in job["steps"]:
            assert "uses" not in step  # no checkout, no action: the API only
            assert "${{" not in step.get("run", ""), "expressions go through env:, never into a script"
    assert f"'{platform.previews.idle_days} days ago'" in text
    assert f"labels/{platform.previews.label}" in text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://git.example.com/ml/ml-gitops.git", ("ml", "ml-gitops")),
        ("ssh://git@git.example.com/org/repo", ("org", "repo")),
        ("git@github.com:org/repo.git", ("org", "repo")),
        ("https://git.example.com/repo.git", ("", "")),
    ],
)
def test_the_polled_repository_is_derived_from_argocd_repo_url(url, expected):
    from generator.config import repository_path

    assert repository_path(url) == expected


def test_a_repo_url_naming_no_owner_needs_previews_owner_and_repo(tmp_path, platform):
    text = (REPO_ROOT / "platform.yaml").read_text()
    url = platform.argocd.repo_url
    (tmp_path / "overlays").symlink_to(REPO_ROOT / "overlays")
    (tmp_path / "platform.yaml").write_text(text.replace(url, "https://git.example.com/ml-gitops.git"))
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "platform.yaml")
    assert any(": previews.owner: " in line and "set previews.owner" in line for line in caught.value.problems)
    fixed = text.replace(url, "https://git.example.com/ml-gitops.git").replace(
        "previews:\n", "previews:\n  owner: ml\n  repo: ml-gitops\n", 1
    )
    (tmp_path / "platform.yaml").write_text(fixed)
    assert load_config(tmp_path / "platform.yaml").preview_repository == ("ml", "ml-gitops")
