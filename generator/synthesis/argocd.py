"""Argo CD objects, in two trees with two owners and two reviews.

``argocd/`` (the app of apps, project ``<project>-apps``, which may deploy Applications and
nothing else): one Application per environment, each in that environment's own project; the
admin Application; the root Application.

``argocd/admin/`` (the admin Application, project ``<project>-admin``): what bounds each
environment. Per environment: its Namespace (Pod Security "restricted"), its AppProject (one
destination, exactly the kinds its overlay renders, no cluster-scoped kind, orphaned-resource
warnings, the sync windows platform.yaml gives it) and the deployer Argo CD impersonates there (a
ServiceAccount, a Role holding exactly the project's kinds, a RoleBinding). Besides: the app of
apps' project and deployer, the locked ``default`` project, and, derived last from everything
else ``argocd/admin/`` holds (``AdminBoundary``), the admin project and its deployer.

No kind is listed by hand: synth passes the kinds each environment's overlay really renders
and the objects ``argocd/admin/`` really holds, so every project grows only with the code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import cdk8s
from cdk8s_plus_33 import k8s
from constructs import Construct

from generator.config import ArgoCD, Environment, SyncWindow
from generator.conventions import KUBERNETES_VERSION, application_name, resource_plural
from generator.paths import ARGOCD_ADMIN_DIR, ARGOCD_APPS_DIR

API_VERSION = "argoproj.io/v1alpha1"
IN_CLUSTER = "https://kubernetes.default.svc"
CASCADE_FINALIZER = "resources-finalizer.argocd.argoproj.io"
RETRY = {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}}
#: The app of apps' source path (Applications only) and the admin Application's.
APPS_PATH, ADMIN_PATH = ARGOCD_APPS_DIR, ARGOCD_ADMIN_DIR
APPLICATION = ("argoproj.io", "Application")
#: What a deployer may do with each kind its project allows (all a sync and a prune need).
VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")
#: The admin deployer writes Roles that grant what it holds: Kubernetes asks for these on top.
RBAC_VERBS = {"Role": ("bind", "escalate"), "ClusterRole": ("bind", "escalate")}
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
RBAC = "rbac.authorization.k8s.io"

GroupKind = tuple[str, str]


@dataclass(frozen=True)
class ArgoCDProps:
    """Who the Argo CD objects describe: the system, its environments and the kinds they deploy."""

    system: str
    description: str
    argocd: ArgoCD
    environments: tuple[Environment, ...]
    #: environment name -> (apiGroup, kind) of every namespaced object its overlay deploys.
    kinds: Mapping[str, tuple[GroupKind, ...]]


def group_kind(obj: Mapping) -> GroupKind:
    """(apiGroup, kind) of a manifest: ``("", "Service")``, ``("apps", "Deployment")``."""
    api_version = str(obj.get("apiVersion", ""))
    return (api_version.split("/")[0] if "/" in api_version else "", str(obj.get("kind", "")))


def deployer_name(project: str) -> str:
    """The ServiceAccount (and Role, and binding) Argo CD impersonates to sync a project's apps."""
    return f"{project}-deployer"


def _kinds(pairs: Iterable[GroupKind]) -> list[dict[str, str]]:
    return [{"group": group, "kind": kind} for group, kind in sorted(set(pairs))]


def rules(
    pairs: Iterable[GroupKind], verbs: Iterable[str] = VERBS, roles: Mapping[str, Iterable[str]] | None = None
) -> list[dict]:
    """RBAC rules granting ``verbs`` on exactly these kinds, one rule per API group; with
    ``roles`` (kind -> names), the ``bind``/``escalate`` that writing those Roles or ClusterRoles
    needs, on them alone."""
    by_group: dict[str, set[str]] = {}
    for group, kind in sorted(set(pairs)):
        by_group.setdefault(group, set()).add(resource_plural(kind))
    granted = [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": sorted(verbs)}
        for group, resources in sorted(by_group.items())
    ]
    for kind, names in sorted((roles or {}).items()):
        granted.append(
            {
                "apiGroups": [RBAC],
                "resources": [resource_plural(kind)],
                "resourceNames": sorted(set(names)),
                "verbs": list(RBAC_VERBS[kind]),
            }
        )
    return granted


def _argo(scope: Construct, id: str, kind: str, name: str, namespace: str, body: dict, **meta: Any) -> cdk8s.ApiObject:
    obj = cdk8s.ApiObject(
        scope,
        id,
        api_version=API_VERSION,
        kind=kind,
        metadata=cdk8s.ApiObjectMetadata(name=name, namespace=namespace, **meta),
    )
    obj.add_json_patch(cdk8s.JsonPatch.add("/spec", body))
    return obj


def _project(scope: Construct, id: str, name: str, namespace: str, body: dict) -> cdk8s.ApiObject:
    return _argo(scope, id, "AppProject", name, namespace, body)


def _deployer(scope: Construct, id: str, name: str, namespace: str, kinds: Iterable[GroupKind]) -> None:
    """A ServiceAccount, a Role holding exactly ``kinds`` in ``namespace``, and their binding."""
    meta = k8s.ObjectMeta(name=name, namespace=namespace)
    k8s.KubeServiceAccount(scope, f"{id}-sa", metadata=meta, automount_service_account_token=False)
    k8s.KubeRole(scope, f"{id}-role", metadata=meta, rules=[k8s.PolicyRule(**_snake(r)) for r in rules(kinds)])
    k8s.KubeRoleBinding(
        scope,
        f"{id}-binding",
        metadata=meta,
        role_ref=k8s.RoleRef(api_group=RBAC, kind="Role", name=name),
        subjects=[k8s.Subject(kind="ServiceAccount", name=name, namespace=namespace)],
    )


def _snake(rule: dict) -> dict:
    names = {"apiGroups": "api_groups", "resourceNames": "resource_names"}
    return {names.get(key, key): value for key, value in rule.items()}


def _impersonate(namespace: str, project: str) -> list[dict]:
    """destinationServiceAccounts: the one destination, synced as the project's deployer (a
    ServiceAccount in that namespace, where Argo CD looks for it)."""
    return [{"server": IN_CLUSTER, "namespace": namespace, "defaultServiceAccount": deployer_name(project)}]


class ArgoCDApplications(Construct):
    """``argocd/``: an Application per environment (in its own project), the admin Application
    and the root app of apps. The project of each is fixed here, never taken from an overlay."""

    def __init__(self, scope: Construct, id: str, props: ArgoCDProps):
        super().__init__(scope, id)
        argocd = props.argocd
        for env in props.environments:
            self._application(props, env)
        _argo(
            self,
            "admin",
            "Application",
            f"{props.system}-admin",
            argocd.namespace,
            {
                "project": argocd.admin_project,
                "source": {"repoURL": argocd.repo_url, "targetRevision": argocd.target_revision, "path": ADMIN_PATH},
                "destination": {"server": IN_CLUSTER, "namespace": argocd.namespace},
                # No prune: removing a Namespace from git must not delete an environment; a person does.
                "syncPolicy": {"automated": {"selfHeal": True}, "retry": RETRY},
            },
            # Namespaces, projects and deployers first, then the environments' Applications.
            annotations={SYNC_WAVE: "-1"},
        )
        _argo(
            self,
            "root",
            "Application",
            f"{props.system}-root",
            argocd.namespace,
            {
                "project": argocd.apps_project,
                "source": {"repoURL": argocd.repo_url, "targetRevision": argocd.target_revision, "path": APPS_PATH},
                "destination": {"server": IN_CLUSTER, "namespace": argocd.namespace},
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True}, "retry": RETRY},
            },
        )

    def _application(self, props: ArgoCDProps, env: Environment) -> None:
        argocd = props.argocd
        sync_policy: dict = {
            # The admin Application creates the namespace (no CreateNamespace here: the
            # project allows no cluster-scoped kind). FailOnSharedResource: a sync stops rather
            # than take over an object another Application already manages.
            "syncOptions": ["FailOnSharedResource=true", "PrunePropagationPolicy=foreground", "PruneLast=true"]
            + (["RespectIgnoreDifferences=true"] if env.strategy.autoscaled else []),
            "retry": RETRY,
        }
        if env.automated:
            # Only the switches that are on (off is Argo CD's default): Argo CD's types omit
            # false values when its controller writes an Application back, so a `prune: false`
            # or `allowEmpty: false` here keeps the app of apps OutOfSync forever (argo-cd
            # #15898, #14666). The e2e suite checks every Argo CD object for such fields.
            switches = {"prune": env.prune, "selfHeal": env.self_heal}
            sync_policy = {"automated": {key: True for key, on in switches.items() if on}, **sync_policy}
        _argo(
            self,
            f"app-{env.name}",
            "Application",
            application_name(props.system, env.name),
            argocd.namespace,
            {
                "project": argocd.environment_project(env),
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


class EnvironmentBoundaries(Construct):
    """``argocd/admin/``, except the admin project: per environment its Namespace, AppProject and
    deployer; the app of apps' project and deployer; the locked ``default`` project."""

    def __init__(self, scope: Construct, id: str, props: ArgoCDProps):
        super().__init__(scope, id)
        argocd = props.argocd
        for env in props.environments:
            self._environment(props, env)
        _project(
            self,
            "apps-project",
            argocd.apps_project,
            argocd.namespace,
            {
                "description": f"{props.system}: the app of apps, which deploys Applications and nothing else",
                "sourceRepos": [argocd.repo_url],
                "destinations": [{"server": IN_CLUSTER, "namespace": argocd.namespace}],
                "destinationServiceAccounts": _impersonate(argocd.namespace, argocd.apps_project),
                # No clusterResourceWhitelist: no cluster-scoped kind at all. (An empty list says
                # the same, but Argo CD's controller drops it when it writes the project back.)
                "namespaceResourceWhitelist": _kinds([APPLICATION]),
            },
        )
        _deployer(self, "apps-deployer", deployer_name(argocd.apps_project), argocd.namespace, [APPLICATION])
        _project(
            self,
            "default-project",
            "default",
            argocd.namespace,
            {
                # Locked: no source repository, no destination, no kind. An Application that
                # names no project (or this one) can deploy nothing.
                "description": "locked: every Application names its own project",
                "namespaceResourceBlacklist": [{"group": "*", "kind": "*"}],
                "clusterResourceBlacklist": [{"group": "*", "kind": "*"}],
            },
        )

    def _environment(self, props: ArgoCDProps, env: Environment) -> None:
        argocd = props.argocd
        project = argocd.environment_project(env)
        kinds = props.kinds[env.name]
        k8s.KubeNamespace(
            self,
            f"namespace-{env.name}",
            metadata=k8s.ObjectMeta(
                name=env.namespace,
                labels={
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": f"v{KUBERNETES_VERSION}",
                },
            ),
        )
        body: dict = {
            "description": f"{props.system}: the {env.name} environment, namespace {env.namespace} only",
            "sourceRepos": [argocd.repo_url],
            "destinations": [{"server": IN_CLUSTER, "namespace": env.namespace}],
            "destinationServiceAccounts": _impersonate(env.namespace, project),
            # No clusterResourceWhitelist: not even the environment's own Namespace, which the
            # admin Application owns (an overlay could otherwise relabel it, say to privileged).
            "namespaceResourceWhitelist": _kinds(kinds),
            "orphanedResources": {"warn": True},
        }
        if env.sync_windows:
            body["syncWindows"] = [self._window(props, env, window) for window in env.sync_windows]
        _project(self, f"project-{env.name}", project, argocd.namespace, body)
        _deployer(self, f"deployer-{env.name}", deployer_name(project), env.namespace, kinds)

    @staticmethod
    def _window(props: ArgoCDProps, env: Environment, window: SyncWindow) -> dict:
        """One sync window of platform.yaml as the AppProject writes it, for the environment's Application."""
        out = {
            "kind": window.kind,
            "schedule": window.schedule,
            "duration": window.duration,
            "timeZone": window.time_zone,
            "applications": [application_name(props.system, env.name)],
        }
        # Only when on: the controller drops a false value when it writes the project back.
        return out | ({"manualSync": True} if window.manual_sync else {})


@dataclass(frozen=True)
class Admitted:
    """What ``argocd/admin/`` holds, as the admin project and its deployer must allow it."""

    #: (apiGroup, kind, name) of each cluster-scoped object: allowed by name.
    cluster: tuple[tuple[str, str, str], ...]
    #: (apiGroup, kind) of the namespaced objects, and the namespaces they are written for.
    namespaced: tuple[GroupKind, ...]
    namespaces: tuple[str, ...]
    #: Role and ClusterRole names the deployer writes (and so must be able to bind).
    roles: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, objects: Iterable[Mapping], cluster_kinds: set[str], default_namespace: str) -> Admitted:
        """Summarise ``objects``; one without a namespace lands in ``default_namespace``."""
        objects = list(objects)
        scoped = [o for o in objects if o.get("kind") not in cluster_kinds]
        roles: dict[str, set[str]] = {}
        for obj in objects:
            if group_kind(obj) in ((RBAC, "Role"), (RBAC, "ClusterRole")):
                roles.setdefault(obj["kind"], set()).add(obj["metadata"]["name"])
        return cls(
            cluster=tuple(
                sorted({(*group_kind(o), o["metadata"]["name"]) for o in objects if o.get("kind") in cluster_kinds})
            ),
            namespaced=tuple(sorted({group_kind(o) for o in scoped})),
            namespaces=tuple(sorted({o["metadata"].get("namespace") or default_namespace for o in scoped})),
            roles={kind: tuple(sorted(names)) for kind, names in sorted(roles.items())},
        )


def _own_objects(argocd: ArgoCD) -> list[dict]:
    """The skeletons of what ``AdminBoundary`` itself writes, so it allows itself too."""
    name = deployer_name(argocd.admin_project)
    rbac = f"{RBAC}/v1"
    return [
        {"apiVersion": API_VERSION, "kind": "AppProject", "metadata": {"name": argocd.admin_project}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": name}},
        {"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": name}},
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": f"{name}-namespaced"}},
        {"apiVersion": rbac, "kind": "RoleBinding", "metadata": {"name": f"{name}-namespaced"}},
    ]


class AdminBoundary(Construct):
    """The admin project and its deployer, derived from ``admitted``: every other object of
    ``argocd/admin/``, whoever generated it (and these objects themselves). Cluster-scoped
    objects are allowed by name, one whitelist entry each; namespaced kinds only in the
    namespaces they are written for."""

    def __init__(self, scope: Construct, id: str, props: ArgoCDProps, admitted: list[dict], cluster_kinds: set[str]):
        super().__init__(scope, id)
        argocd = props.argocd
        project = argocd.admin_project
        allowed = Admitted.of([*admitted, *_own_objects(argocd)], cluster_kinds, argocd.namespace)
        _project(
            self,
            "project",
            project,
            argocd.namespace,
            {
                "description": f"{props.system}: argocd/admin/, the one place that needs admin review",
                "sourceRepos": [argocd.repo_url],
                "destinations": [{"server": IN_CLUSTER, "namespace": namespace} for namespace in allowed.namespaces],
                "destinationServiceAccounts": _impersonate(argocd.namespace, project),
                "clusterResourceWhitelist": [{"group": g, "kind": k, "name": n} for g, k, n in allowed.cluster],
                "namespaceResourceWhitelist": _kinds(allowed.namespaced),
            },
        )
        self._deployer(deployer_name(project), argocd.namespace, allowed)

    def _deployer(self, name: str, namespace: str, allowed: Admitted) -> None:
        """A ClusterRole on exactly the named cluster-scoped objects (only ``create`` cannot be
        limited by name), and one on the namespaced kinds, bound only in the admin namespaces."""
        cluster_kinds = sorted({(g, k) for g, k, _ in allowed.cluster})
        named = [
            {
                "apiGroups": [g],
                "resources": [resource_plural(k)],
                "resourceNames": [n for g2, k2, n in allowed.cluster if (g2, k2) == (g, k)],
                "verbs": ["delete", "get", "patch", "update"],
            }
            for g, k in cluster_kinds
        ]
        cluster_roles = {k: v for k, v in allowed.roles.items() if k == "ClusterRole"}
        namespaced_roles = {k: v for k, v in allowed.roles.items() if k == "Role"}
        subjects = [k8s.Subject(kind="ServiceAccount", name=name, namespace=namespace)]
        k8s.KubeServiceAccount(
            self, "sa", metadata=k8s.ObjectMeta(name=name, namespace=namespace), automount_service_account_token=False
        )
        self._cluster_role(name, named + rules(cluster_kinds, ["create"], cluster_roles))
        k8s.KubeClusterRoleBinding(
            self,
            "cluster-binding",
            metadata=k8s.ObjectMeta(name=name),
            role_ref=_cluster_role_ref(name),
            subjects=subjects,
        )
        namespaced = f"{name}-namespaced"
        self._cluster_role(namespaced, rules(allowed.namespaced, VERBS, namespaced_roles))
        for target in allowed.namespaces:
            k8s.KubeRoleBinding(
                self,
                f"binding-{target}",
                metadata=k8s.ObjectMeta(name=namespaced, namespace=target),
                role_ref=_cluster_role_ref(namespaced),
                subjects=subjects,
            )

    def _cluster_role(self, name: str, granted: list[dict]) -> None:
        k8s.KubeClusterRole(
            self,
            f"role-{name}",
            metadata=k8s.ObjectMeta(name=name),
            rules=[k8s.PolicyRule(**_snake(r)) for r in granted],
        )


def _cluster_role_ref(name: str) -> k8s.RoleRef:
    return k8s.RoleRef(api_group=RBAC, kind="ClusterRole", name=name)
