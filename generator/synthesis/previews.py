"""Pull-request previews: what ``make synth`` writes for them (README, "Pull-request previews").

Two ApplicationSets with the same Pull Request generator (GitHub, pull requests labelled
``previews.label``), each giving an open pull request one Application, named from its number only:

- the **workload** (``<system>-pr-<N>``, project ``<project>-previews``): ``overlays/preview`` at
  the pull request's head commit, into namespace ``pr-<N>``. That overlay is the ``pinFrom``
  environment's (its server image, model version and digest: read at render time, so the release
  commands that edit the pin need not touch it), without what a preview must not run or own
  (autoscaler, disruption budget, monitoring, NetworkPolicies, ServiceAccount), one replica, on
  the namespace's ``default`` ServiceAccount with no token. Its project allows ``pr-*`` namespaces
  and the few kinds in ``WORKLOAD_KINDS``, nothing cluster-scoped.
- the **guardrails** (``<system>-pr-<N>-guardrails``, project ``<project>-preview-guardrails``):
  ``overlays/preview-guardrails`` at ``argocd.targetRevision`` (the default branch, so a pull
  request cannot loosen them): the Namespace (Pod Security restricted; kustomize's namespace
  transformer names it ``pr-<N>``), a ResourceQuota (no GPU, Job, CronJob, LoadBalancer or
  NodePort), a LimitRange, the default-deny NetworkPolicy, the servers' own NetworkPolicies (the
  model pull's egress), and the RoleBinding that lets the workload's deployer write there.

Both Applications carry the resources finalizer: a closed (or unlabelled) pull request loses its
Applications, and with them everything they made, the Namespace included (owned by an
Application, not created by ``CreateNamespace``, which never deletes one: argo-cd#7875).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import yaml

from generator.config import ArgoCD, Platform, Previews
from generator.conventions import KUBERNETES_VERSION, PREVIEW_NAMESPACE_PREFIX, PREVIEW_NAMESPACES, resource_plural
from generator.paths import GUARDRAILS_OVERLAY, PREVIEW_OVERLAY
from generator.synthesis.argocd import (
    API_VERSION,
    CASCADE_FINALIZER,
    IN_CLUSTER,
    RBAC,
    RETRY,
    VERBS,
    GroupKind,
    deployer_name,
    rules,
)
from generator.synthesis.monitoring import DASHBOARD_LABEL
from generator.synthesis.training import GPU_RESOURCE

#: The only kinds a preview's workload may hold (its project's whitelist, its deployer's role).
WORKLOAD_KINDS: tuple[GroupKind, ...] = (("", "ConfigMap"), ("", "Service"), ("apps", "Deployment"))
#: What the guardrails hold, namespaced (the Namespace itself is allowed by name, ``pr-*``).
GUARDRAIL_KINDS: tuple[GroupKind, ...] = (
    ("", "LimitRange"),
    ("", "ResourceQuota"),
    ("networking.k8s.io", "NetworkPolicy"),
    (RBAC, "RoleBinding"),
)
#: The ApplicationSets' Go-template parameters (the Pull Request generator's) that they use.
NUMBER, HEAD_SHA, HEAD_SHORT_SHA = "{{.number}}", "{{.head_sha}}", "{{.head_short_sha}}"
#: The placeholder name of the guardrails' Namespace: the namespace transformer renames it.
NAMESPACE_PLACEHOLDER = "preview"
GUARDRAILS = "preview-guardrails"
#: Object names of the guardrails (one of each per preview namespace).
QUOTA = LIMITS = "preview"


def preview_namespace_template() -> str:
    """The namespace of the pull request an ApplicationSet template stands for."""
    return f"{PREVIEW_NAMESPACE_PREFIX}{NUMBER}"


def workload_application(system: str) -> str:
    """The workload Application's name template (the number only: a branch is the author's word)."""
    return f"{system}-pr-{NUMBER}"


def guardrails_application(system: str) -> str:
    """The guardrails Application's name template."""
    return f"{system}-pr-{NUMBER}-guardrails"


def preview_overlay(pinned_overlay: str, pinned_kinds: Iterable[GroupKind]) -> dict:
    """``overlays/preview``'s kustomization: the pinned environment's overlay, less every kind not
    in ``WORKLOAD_KINDS`` that it renders, less its dashboard, one replica, no API token."""
    dropped = sorted({kind for _, kind in pinned_kinds} - {kind for _, kind in WORKLOAD_KINDS})
    delete = "$patch: delete\nkind: Any\nmetadata:\n  name: any\n"
    patches = [{"target": {"kind": f"^({'|'.join(dropped)})$"}, "patch": delete}] if dropped else []
    selector = ",".join(f"{key}={value}" for key, value in DASHBOARD_LABEL.items())
    patches.append({"target": {"kind": "ConfigMap", "labelSelector": selector}, "patch": delete})
    pod = "/spec/template/spec"
    serve_only = [
        {"op": "add", "path": "/spec/replicas", "value": 1},
        {"op": "add", "path": f"{pod}/serviceAccountName", "value": "default"},
        {"op": "add", "path": f"{pod}/automountServiceAccountToken", "value": False},
    ]
    patches.append({"target": {"group": "apps", "kind": "Deployment"}, "patch": yaml.safe_dump(serve_only)})
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # No namespace: Argo CD sets pr-<N> (the Application's kustomize.namespace).
        "resources": [f"../{pinned_overlay.rsplit('/', 1)[-1]}"],
        "patches": patches,
    }


@dataclass(frozen=True)
class GuardrailProps:
    """What a preview namespace's guardrails are made of."""

    system: str
    previews: Previews
    argocd: ArgoCD
    #: The servers' per-container requests and limits (the LimitRange's defaults).
    requests: Mapping[str, str]
    limits: Mapping[str, str]
    #: The base's NetworkPolicies (default-deny and each server's), as every environment has them.
    network_policies: tuple[dict, ...]


def guardrail_objects(props: GuardrailProps) -> dict[str, dict]:
    """``overlays/preview-guardrails``' objects by file name (without namespaces: Argo CD's
    kustomize.namespace gives them ``pr-<N>``, and the Namespace its name)."""
    quota = props.previews.quota
    hard = {
        "requests.cpu": quota.cpu,
        "limits.cpu": quota.cpu,
        "requests.memory": quota.memory,
        "limits.memory": quota.memory,
        "pods": str(quota.pods),
        f"requests.{GPU_RESOURCE}": "0",
        "count/jobs.batch": "0",
        "count/cronjobs.batch": "0",
        "persistentvolumeclaims": "0",
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }
    objects = {
        "namespace.yaml": {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": NAMESPACE_PLACEHOLDER,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": f"v{KUBERNETES_VERSION}",
                },
            },
        },
        "resourcequota.yaml": {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": QUOTA},
            "spec": {"hard": hard},
        },
        "limitrange.yaml": {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": LIMITS},
            "spec": {
                "limits": [{"type": "Container", "default": dict(props.limits), "defaultRequest": dict(props.requests)}]
            },
        },
        "rolebinding.yaml": _workload_binding(props.argocd),
    }
    for policy in props.network_policies:
        objects[f"networkpolicy-{policy['metadata']['name']}.yaml"] = policy
    return objects


def _workload_binding(argocd: ArgoCD) -> dict:
    """Lets the workload's deployer (in Argo CD's namespace) write its kinds in this namespace only."""
    name = deployer_name(argocd.previews_project)
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": argocd.namespace}],
    }


def guardrails_kustomization(files: Iterable[str]) -> dict:
    """``overlays/preview-guardrails``' kustomization (its namespace comes from the Application)."""
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": sorted(files)}


def _generator(previews: Previews, repository: tuple[str, str]) -> dict:
    """The Pull Request generator both ApplicationSets share: open PRs carrying the label."""
    github: dict = {"owner": repository[0], "repo": repository[1], "labels": [previews.label]}
    if previews.api:
        github["api"] = previews.api
    if previews.token_secret:
        github["tokenRef"] = {"secretName": previews.token_secret, "key": "token"}
    return {"pullRequest": {"github": github, "requeueAfterSeconds": previews.requeue_after_seconds}}


def _application_set(name: str, platform: Platform, app: str, spec: dict) -> dict:
    """An ApplicationSet over the labelled pull requests; ``missingkey=error``: a parameter the
    generator does not give fails the template instead of rendering as an empty string."""
    previews = platform.previews
    assert previews is not None, "synth writes previews only when platform.yaml asks for them"
    return {
        "apiVersion": API_VERSION,
        "kind": "ApplicationSet",
        "metadata": {"name": name, "namespace": platform.argocd.namespace},
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [_generator(previews, platform.preview_repository)],
            "template": {"metadata": {"name": app, "finalizers": [CASCADE_FINALIZER]}, "spec": spec},
        },
    }


def _app_spec(argocd: ArgoCD, project: str, revision: str, path: str) -> dict:
    namespace = preview_namespace_template()
    return {
        "project": project,
        "source": {
            "repoURL": argocd.repo_url,
            "targetRevision": revision,
            "path": path,
            "kustomize": {"namespace": namespace},
        },
        "destination": {"server": IN_CLUSTER, "namespace": namespace},
        "syncPolicy": {
            "automated": {"prune": True, "selfHeal": True},
            "syncOptions": ["FailOnSharedResource=true"],
            "retry": RETRY,
        },
        "info": [{"name": "pull-request", "value": NUMBER}, {"name": "commit", "value": HEAD_SHORT_SHA}],
    }


def application_sets(platform: Platform) -> list[dict]:
    """The workload's ApplicationSet (the PR's head commit) and the guardrails' (the default branch)."""
    system, argocd = platform.name, platform.argocd
    return [
        _application_set(
            f"{system}-previews",
            platform,
            workload_application(system),
            _app_spec(argocd, argocd.previews_project, HEAD_SHA, PREVIEW_OVERLAY),
        ),
        _application_set(
            f"{system}-{GUARDRAILS}",
            platform,
            guardrails_application(system),
            _app_spec(argocd, argocd.guardrails_project, argocd.target_revision, GUARDRAILS_OVERLAY),
        ),
    ]


def _impersonate(argocd: ArgoCD, project: str) -> list[dict]:
    """Every ``pr-*`` namespace synced as the project's deployer, a ServiceAccount in Argo CD's
    namespace (``<namespace>:<name>``: there is no preview namespace to keep it in beforehand)."""
    return [
        {
            "server": IN_CLUSTER,
            "namespace": PREVIEW_NAMESPACES,
            "defaultServiceAccount": f"{argocd.namespace}:{deployer_name(project)}",
        }
    ]


def _kinds(pairs: Iterable[GroupKind]) -> list[dict[str, str]]:
    return [{"group": group, "kind": kind} for group, kind in sorted(set(pairs))]


def projects(system: str, argocd: ArgoCD) -> list[dict]:
    """The previews' AppProject (``pr-*``, ``WORKLOAD_KINDS``, nothing cluster-scoped) and the
    guardrails' (``pr-*``, their kinds, Namespaces named ``pr-*`` and no other)."""
    destinations = [{"server": IN_CLUSTER, "namespace": PREVIEW_NAMESPACES}]
    workload = {
        "description": f"{system}: pull-request previews, namespaces {PREVIEW_NAMESPACES} only",
        "sourceRepos": [argocd.repo_url],
        "destinations": destinations,
        "destinationServiceAccounts": _impersonate(argocd, argocd.previews_project),
        "namespaceResourceWhitelist": _kinds(WORKLOAD_KINDS),
        "orphanedResources": {"warn": True},
    }
    guardrails = {
        "description": f"{system}: the previews' guardrails, from {argocd.target_revision} only",
        "sourceRepos": [argocd.repo_url],
        "destinations": destinations,
        "destinationServiceAccounts": _impersonate(argocd, argocd.guardrails_project),
        "clusterResourceWhitelist": [{"group": "", "kind": "Namespace", "name": PREVIEW_NAMESPACES}],
        "namespaceResourceWhitelist": _kinds(GUARDRAIL_KINDS),
    }
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "AppProject",
            "metadata": {"name": name, "namespace": argocd.namespace},
            "spec": spec,
        }
        for name, spec in ((argocd.previews_project, workload), (argocd.guardrails_project, guardrails))
    ]


def deployers(argocd: ArgoCD) -> list[dict]:
    """The two deployers Argo CD impersonates. The workload's holds ``WORKLOAD_KINDS`` through a
    ClusterRole that only the guardrails bind, per preview namespace. The guardrails' holds their
    kinds cluster-wide (RBAC cannot say ``pr-*``; its project can), and may bind only that role."""
    rbac = f"{RBAC}/v1"
    workload, guard = deployer_name(argocd.previews_project), deployer_name(argocd.guardrails_project)
    guard_rules = rules([*GUARDRAIL_KINDS, ("", "Namespace")]) + [
        {
            "apiGroups": [RBAC],
            "resources": [resource_plural("ClusterRole")],
            "resourceNames": [workload],
            "verbs": ["bind"],
        }
    ]
    out: list[dict] = []
    for name, granted in ((workload, rules(WORKLOAD_KINDS, VERBS)), (guard, guard_rules)):
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": argocd.namespace},
                "automountServiceAccountToken": False,
            }
        )
        out.append({"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": name}, "rules": granted})
    out.append(
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": guard},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": guard},
            "subjects": [{"kind": "ServiceAccount", "name": guard, "namespace": argocd.namespace}],
        }
    )
    return out


def label_workflow(previews: Previews) -> str:
    """``.github/workflows/preview-label.yaml``: takes the approval label off a pull request from
    a fork (its head is not ours to run) and off one idle for ``idleDays``. It runs on
    ``pull_request_target`` (a fork's token could not remove a label) and so never checks out
    anything: it only reads the event and calls the API, with ``pull-requests: write`` alone."""
    label, days = previews.label, previews.idle_days
    return f"""# Pull-request previews' approval (README, "Pull-request previews"): Argo CD runs a preview for
# every open pull request labelled `{label}` (platform.yaml previews.label). This takes the label
# off a pull request from a fork, whenever it is opened, reopened, pushed to or labelled (a fork's
# commits are not for this cluster), and, every hour, off a pull request idle for {days} days
# (previews.idleDays): its preview goes with it. Nothing is checked out: no code of a pull request
# runs here. zizmor checks this file.
name: preview-label

on:
  # zizmor: ignore[dangerous-triggers] no checkout, no pull-request input in a script; labels only.
  pull_request_target:
    types: [opened, reopened, synchronize, labeled]
  schedule:
    - cron: "23 * * * *"
  workflow_dispatch:

permissions: {{}}

jobs:
  fork:
    name: no preview for a fork
    if: >-
      github.event_name == 'pull_request_target'
      && github.event.pull_request.head.repo.full_name != github.repository
      && contains(github.event.pull_request.labels.*.name, '{label}')
    runs-on: ubuntu-24.04
    timeout-minutes: 5
    permissions:
      pull-requests: write  # remove a label (nothing else)
    steps:
      - name: Remove the label
        env:
          GH_TOKEN: ${{{{ github.token }}}}
          GH_REPO: ${{{{ github.repository }}}}
          NUMBER: ${{{{ github.event.pull_request.number }}}}
        run: gh api --method DELETE "repos/$GH_REPO/issues/$NUMBER/labels/{label}" --silent

  idle:
    name: no preview for an idle pull request
    if: github.event_name != 'pull_request_target'
    runs-on: ubuntu-24.04
    timeout-minutes: 10
    permissions:
      pull-requests: write  # list pull requests, remove a label (nothing else)
    steps:
      - name: Remove the label from pull requests idle for {days} days
        env:
          GH_TOKEN: ${{{{ github.token }}}}
          GH_REPO: ${{{{ github.repository }}}}
        run: |
          cutoff="$(date -u -d '{days} days ago' +%Y-%m-%dT%H:%M:%SZ)"
          gh pr list --state open --label '{label}' --limit 1000 --json number,updatedAt \\
            --jq ".[] | select(.updatedAt < \\"$cutoff\\") | .number" |
          while read -r number; do
            gh api --method DELETE "repos/$GH_REPO/issues/$number/labels/{label}" --silent
            echo "#$number: idle since before $cutoff, label {label} removed"
          done
"""
