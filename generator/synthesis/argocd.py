"""Argo CD objects: a least-privilege AppProject, one Application per environment, and a
root app-of-apps (with a project of its own that may deploy nothing but Argo CD objects).

The kinds an environment may deploy are not listed by hand: synth passes the kinds the
generated base and components really contain, so the project grows only with the code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cdk8s
from constructs import Construct

from generator.config import ArgoCD, Environment
from generator.conventions import KUBERNETES_VERSION

API_VERSION = "argoproj.io/v1alpha1"
IN_CLUSTER = "https://kubernetes.default.svc"
CASCADE_FINALIZER = "resources-finalizer.argocd.argoproj.io"
# Argo CD itself creates each environment's namespace (CreateNamespace=true): the one
# cluster-scoped kind the workload project needs.
CLUSTER_KINDS = (("", "Namespace"),)
RETRY = {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}}


@dataclass(frozen=True)
class ArgoCDProps:
    """Who the Argo CD objects describe: the system, its environments and the kinds they deploy."""

    system: str
    description: str
    argocd: ArgoCD
    environments: tuple[Environment, ...]
    #: (apiGroup, kind) of every namespaced object the overlays deploy.
    namespaced_kinds: tuple[tuple[str, str], ...]


def _kinds(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"group": group, "kind": kind} for group, kind in sorted(set(pairs))]


def _object(
    scope: Construct, id: str, kind: str, name: str, namespace: str, body: dict, finalizers: list[str] | None = None
) -> cdk8s.ApiObject:
    obj = cdk8s.ApiObject(
        scope,
        id,
        api_version=API_VERSION,
        kind=kind,
        metadata=cdk8s.ApiObjectMetadata(name=name, namespace=namespace, finalizers=finalizers),
    )
    obj.add_json_patch(cdk8s.JsonPatch.add("/spec", body))
    return obj


class ArgoCDApps(Construct):
    """AppProjects, per-environment Applications and the root Application."""

    def __init__(self, scope: Construct, id: str, props: ArgoCDProps):
        super().__init__(scope, id)
        argocd = props.argocd
        self.root_project = f"{argocd.project}-apps"
        _object(
            self,
            "project",
            "AppProject",
            argocd.project,
            argocd.namespace,
            {
                "description": f"{props.system}: workloads of every environment",
                "sourceRepos": [argocd.repo_url],
                "destinations": [{"server": IN_CLUSTER, "namespace": env.namespace} for env in props.environments],
                "clusterResourceWhitelist": _kinds(CLUSTER_KINDS),
                "namespaceResourceWhitelist": _kinds(props.namespaced_kinds),
            },
        )
        _object(
            self,
            "root-project",
            "AppProject",
            self.root_project,
            argocd.namespace,
            {
                "description": f"{props.system}: the app-of-apps, which deploys only Argo CD objects",
                "sourceRepos": [argocd.repo_url],
                "destinations": [{"server": IN_CLUSTER, "namespace": argocd.namespace}],
                # No clusterResourceWhitelist: no cluster-scoped kind at all. (An empty list says
                # the same, but Argo CD's controller drops it when it writes the project back.)
                "namespaceResourceWhitelist": _kinds([("argoproj.io", "Application"), ("argoproj.io", "AppProject")]),
            },
        )
        for env in props.environments:
            self._application(props, env)
        _object(
            self,
            "root",
            "Application",
            f"{props.system}-root",
            argocd.namespace,
            {
                "project": self.root_project,
                "source": {"repoURL": argocd.repo_url, "targetRevision": argocd.target_revision, "path": "argocd"},
                "destination": {"server": IN_CLUSTER, "namespace": argocd.namespace},
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True}, "retry": RETRY},
            },
        )

    def _application(self, props: ArgoCDProps, env: Environment) -> None:
        argocd = props.argocd
        sync_policy: dict = {
            "syncOptions": [
                "CreateNamespace=true",
                "PrunePropagationPolicy=foreground",
                "PruneLast=true",
            ]
            + (["RespectIgnoreDifferences=true"] if env.strategy.autoscaled else []),
            # The namespace Argo CD creates enforces Pod Security "restricted".
            "managedNamespaceMetadata": {
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": f"v{KUBERNETES_VERSION}",
                }
            },
            "retry": RETRY,
        }
        if env.automated:
            # Only the switches that are on (off is Argo CD's default): Argo CD's types omit
            # false values when its controller writes an Application back, so a `prune: false`
            # or `allowEmpty: false` here keeps the app of apps OutOfSync forever (argo-cd
            # #15898, #14666). The e2e suite checks every Argo CD object for such fields.
            switches = {"prune": env.prune, "selfHeal": env.self_heal}
            sync_policy = {"automated": {key: True for key, on in switches.items() if on}, **sync_policy}
        _object(
            self,
            f"app-{env.name}",
            "Application",
            f"{props.system}-{env.name}",
            argocd.namespace,
            {
                # The project is fixed here, never taken from the overlay, so an overlay cannot escape it.
                "project": argocd.project,
                "source": {"repoURL": argocd.repo_url, "targetRevision": argocd.target_revision, "path": env.overlay},
                "destination": {"server": IN_CLUSTER, "namespace": env.namespace},
                "syncPolicy": sync_policy,
                **self._ignore_differences(env),
                "info": [{"name": "strategy", "value": env.strategy.name}],
            },
            finalizers=[CASCADE_FINALIZER] if env.prune else None,
        )

    @staticmethod
    def _ignore_differences(env: Environment) -> dict:
        """Rolling: the HorizontalPodAutoscaler owns replicas, so git must not fight it. Blue-green
        and canary variants run the replicas git pins (scaling a slot to zero is a commit)."""
        if not env.strategy.autoscaled:
            return {}
        return {"ignoreDifferences": [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]}
