"""Cross-reference checks: what names another object must find it in the same render.

Inside an overlay: Services select pods and target a container port; PDBs, HPAs and
NetworkPolicies target something; pods find their ServiceAccount, ConfigMaps and PVCs; HTTPRoute
and GRPCRoute backends exist; the pods of a distributed (Indexed) Job find each other through their own
headless Service and may talk on its port, and only they. Across the repository: each Argo CD
Application's path exists and builds, its destination namespace is the overlay's, and its
AppProject permits the repo, the destination and every kind the path deploys, without wildcards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from generator.conventions import PREVIEW_NAMESPACES
from generator.validate.kube import (
    CLUSTER_SCOPED,
    PodTemplate,
    as_list,
    key_of,
    map_selector_matches,
    pod_template,
    selector_matches,
)
from generator.validate.model import Finding, Resource
from generator.validate.policies import Environment
from generator.validate.render import Rendered

CHECKS = {
    "namespace": "every namespaced object lands in the overlay's namespace (platform.yaml environments)",
    "cluster-scoped": "an overlay renders no cluster-scoped object but its own Namespace (the admin Application "
    "owns the rest)",
    "service-selector": "a Service selects pods rendered in the same overlay",
    "service-target-port": "a Service's targetPort is a port of the pods it selects",
    "pdb-target": "a PodDisruptionBudget selects pods",
    "hpa-target": "an HPA's scaleTargetRef exists",
    "netpol-target": "a NetworkPolicy's podSelector selects pods",
    "ref-serviceaccount": "a pod's ServiceAccount exists",
    "ref-configmap": "ConfigMaps a pod uses exist",
    "ref-pvc": "PersistentVolumeClaims a pod mounts exist",
    "route-backend": "an HTTPRoute's or GRPCRoute's backends are Services with that port",
    "indexed-job-workers": "an Indexed Job whose pods meet on a subdomain runs every index at once "
    "(parallelism = completions, = TRAINING_WORKERS when set)",
    "indexed-job-service": "an Indexed Job's subdomain is a headless Service publishing not-ready addresses "
    "that selects this Job's pods and no others",
    "indexed-job-network": "NetworkPolicies let an Indexed Job's pods reach each other on the worker port, "
    "and no other pods reach it",
    "argocd-app-path": "an Application's path exists in the repository and builds",
    "argocd-app-namespace": "an Application's destination namespace is its overlay's namespace",
    "argocd-project": "an Application's AppProject exists and permits its repo and destination",
    "argocd-project-kinds": "the AppProject permits every kind the Application deploys",
    "argocd-project-wildcard": "an AppProject grants nothing by wildcard",
    "argocd-overlay-synced": "every environment overlay is deployed by some Application",
    "argocd-app-environment": "an environment's Application names that environment's AppProject, namespace "
    "and overlay (platform.yaml environments), and that project has one destination and no cluster-scoped kind",
    "argocd-hpa-replicas": "Argo CD ignores (and keeps ignoring on sync) spec.replicas of HPA-scaled Deployments",
}


def _ignores_replicas(app: Resource, group: str, kind: str, name: str) -> bool:
    for entry in as_list(app.spec.get("ignoreDifferences")):
        entry = _d(entry)
        if entry.get("group", "") != group or entry.get("kind") != kind or entry.get("name") not in (None, name):
            continue
        if "/spec/replicas" in as_list(entry.get("jsonPointers")) or ".spec.replicas" in as_list(
            entry.get("jqPathExpressions")
        ):
            return True
    return False


def hpa_replicas(app: Resource, resources: list[Resource]) -> list[Finding]:
    """An HPA and Argo CD both own spec.replicas unless the Application ignores the field
    and syncs with RespectIgnoreDifferences=true (else every sync resets the HPA's count)."""
    out = []
    workloads = {(r.namespace, r.kind, r.name): r for r in resources}
    respect = "RespectIgnoreDifferences=true" in as_list(_d(app.spec.get("syncPolicy")).get("syncOptions"))
    for hpa in (r for r in resources if r.kind == "HorizontalPodAutoscaler"):
        ref = _d(hpa.spec.get("scaleTargetRef"))
        target = workloads.get((hpa.namespace, key_of(ref.get("kind")), key_of(ref.get("name"))))
        if target is None or "replicas" not in target.spec:
            continue
        if not _ignores_replicas(app, target.group, target.kind, target.name):
            out.append(
                app.finding(
                    "spec.ignoreDifferences",
                    f"HPA {hpa.name!r} scales {target.kind}/{target.name}, "
                    "which sets spec.replicas: ignore /spec/replicas for it",
                    "argocd-hpa-replicas",
                )
            )
        elif not respect:
            out.append(
                app.finding(
                    "spec.syncPolicy.syncOptions",
                    "ignoreDifferences on spec.replicas needs "
                    "RespectIgnoreDifferences=true, or each sync resets the HPA's replica count",
                    "argocd-hpa-replicas",
                )
            )
    return out


def _d(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def check_namespaces(resources: list[Resource], expected: str) -> list[Finding]:
    """Objects outside the environment's namespace escape its AppProject destination and policies;
    cluster-scoped ones (but its own Namespace) reach past the environment altogether."""
    if not expected:
        return []
    out = []
    for res in resources:
        if res.kind not in CLUSTER_SCOPED:
            if res.namespace != expected:
                message = f"namespace {res.namespace or '(none)'!r} is not the environment's {expected!r}"
                out.append(res.finding("metadata.namespace", message, "namespace"))
        elif not (res.kind == "Namespace" and res.group == "" and res.name == expected):
            message = (
                f"cluster-scoped {res.kind} in the overlay of namespace {expected!r}: it reaches past the "
                "environment; cluster-wide objects belong in argocd/admin/ (the admin Application)"
            )
            out.append(res.finding("kind", message, "cluster-scoped"))
    return out


def check_environment_apps(argocd_resources: list[Resource], envs: dict[str, Environment]) -> list[Finding]:
    """Each environment's Application (by name) syncs that environment's overlay into its
    namespace under its own AppProject: a mismatch would let one environment write into another's
    namespace, or under another's kinds."""
    apps = {r.name: r for r in argocd_resources if r.kind == "Application"}
    out: list[Finding] = []
    for overlay, env in sorted(envs.items()):
        app = apps.get(env.application)
        if app is None:
            continue
        source = _d(app.spec.get("source"))
        dest = _d(app.spec.get("destination"))
        wanted = (
            ("spec.project", app.spec.get("project"), env.project, "AppProject"),
            ("spec.destination.namespace", dest.get("namespace"), env.namespace, "namespace"),
            ("spec.source.path", str(source.get("path", "")).strip("/"), overlay, "overlay"),
        )
        for path, actual, expected, what in wanted:
            if expected and actual != expected:
                message = f"{actual!r} is not the environment's {what} {expected!r} (platform.yaml environments)"
                out.append(app.finding(path, message, "argocd-app-environment"))
        if app.spec.get("sources"):
            out.append(
                app.finding("spec.sources", "an environment syncs one source, its overlay", "argocd-app-environment")
            )
    projects = {r.name: r for r in argocd_resources if r.kind == "AppProject"}
    for env in envs.values():
        if env.project in projects:
            out.extend(_environment_project_findings(projects[env.project], env))
    return out


def _environment_project_findings(project: Resource, env: Environment) -> list[Finding]:
    """An environment's AppProject reaches its namespace and nothing else: one destination, and
    no cluster-scoped kind (its Namespace belongs to the admin Application)."""
    out: list[Finding] = []
    destinations = [_d(d) for d in as_list(project.spec.get("destinations"))]
    others = [d.get("namespace") for d in destinations if d.get("namespace") != env.namespace]
    if others or not destinations:
        extra = f"it also has {others}" if others else "it has none"
        message = f"an environment's project has one destination, namespace {env.namespace!r}; {extra}"
        out.append(project.finding("spec.destinations", message, "argocd-app-environment"))
    if as_list(project.spec.get("clusterResourceWhitelist")):
        message = "an environment's project allows no cluster-scoped kind (argocd/admin/ owns its Namespace)"
        out.append(project.finding("spec.clusterResourceWhitelist", message, "argocd-app-environment"))
    return out


def check_overlay(resources: list[Resource]) -> list[Finding]:
    """Every reference inside one rendered overlay: Services, the objects that target pods or
    workloads, what each pod names (ServiceAccount, ConfigMaps, PVCs), worker groups, routes."""
    pods = [p for p in (pod_template(r) for r in resources) if p is not None]
    by_kind: dict[str, dict[tuple[str, str], Resource]] = {}
    for res in resources:
        by_kind.setdefault(res.kind, {})[(res.namespace, res.name)] = res
    services = by_kind.get("Service", {})
    out = _service_findings(services, pods)
    out.extend(_target_findings(by_kind, pods))
    for pod in pods:
        out.extend(_pod_references(pod, by_kind))
    out.extend(check_worker_groups(resources, pods))
    for kind in ("HTTPRoute", "GRPCRoute"):
        out.extend(_route_findings(by_kind.get(kind, {}), services))
    return out


def _container_ports(pod: PodTemplate) -> tuple[set, set]:
    """The container port numbers and names of ``pod``: what a Service's targetPort may name."""
    numbers, names = set(), set()
    for _, container in pod.containers():
        for cport in as_list(container.get("ports")):
            if isinstance(cport, dict):
                numbers.add(key_of(cport.get("containerPort")))
                names.add(key_of(cport.get("name")))
    return numbers, names


def _service_findings(services: dict[tuple[str, str], Resource], pods: list[PodTemplate]) -> list[Finding]:
    """A Service with a selector must select some pod here, and its targetPorts must be ports of
    every pod it selects (else it routes to nothing, or to a port nobody listens on)."""
    out: list[Finding] = []
    for svc in services.values():
        selector = svc.spec.get("selector")
        if not isinstance(selector, dict) or not selector or svc.spec.get("type") == "ExternalName":
            continue
        selected = [p for p in pods if p.namespace == svc.namespace and map_selector_matches(selector, p.labels)]
        if not selected:
            out.append(
                svc.finding(
                    "spec.selector", f"selects no pods in this overlay (selector {selector})", "service-selector"
                )
            )
            continue
        for index, port in enumerate(as_list(svc.spec.get("ports"))):
            if not isinstance(port, dict):
                continue
            target = port.get("targetPort", port.get("port"))
            if not isinstance(target, (str, int)) or isinstance(target, bool):
                continue  # the schema check reports it
            for pod in selected:
                numbers, names = _container_ports(pod)
                ok = target in names if isinstance(target, str) else target in numbers
                if not ok:
                    out.append(
                        svc.finding(
                            ["spec", "ports", index, "targetPort"],
                            f"targetPort {target!r} is not a container port of {pod.resource.kind}/{pod.resource.name}",
                            "service-target-port",
                        )
                    )
    return out


def _target_findings(by_kind: dict[str, dict[tuple[str, str], Resource]], pods: list[PodTemplate]) -> list[Finding]:
    """PDBs, HPAs and NetworkPolicies find what they target (else they protect, scale or isolate nothing)."""
    out: list[Finding] = []
    for pdb in by_kind.get("PodDisruptionBudget", {}).values():
        selector = pdb.spec.get("selector")
        if not isinstance(selector, dict) or not any(
            p.namespace == pdb.namespace and selector_matches(selector, p.labels) for p in pods
        ):
            out.append(pdb.finding("spec.selector", "selects no pods in this overlay", "pdb-target"))

    for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
        ref = _d(hpa.spec.get("scaleTargetRef"))
        if (hpa.namespace, key_of(ref.get("name"))) not in by_kind.get(key_of(ref.get("kind", "")), {}):
            out.append(
                hpa.finding(
                    "spec.scaleTargetRef",
                    f"{ref.get('kind')}/{ref.get('name')} does not exist in this overlay",
                    "hpa-target",
                )
            )

    for netpol in by_kind.get("NetworkPolicy", {}).values():
        selector = netpol.spec.get("podSelector")
        if (
            isinstance(selector, dict)
            and selector
            and not any(p.namespace == netpol.namespace and selector_matches(selector, p.labels) for p in pods)
        ):
            out.append(netpol.finding("spec.podSelector", "selects no pods in this overlay", "netpol-target"))
    return out


def _missing_configmap(pod: PodTemplate, ref: dict, path: list, configmaps: dict) -> list[Finding]:
    """A required (not ``optional``) reference to a ConfigMap this overlay lacks: the pod would not start."""
    if ref and not ref.get("optional") and (pod.namespace, key_of(ref.get("name"))) not in configmaps:
        return [pod.resource.finding(path, f"ConfigMap {ref.get('name')!r} does not exist", "ref-configmap")]
    return []


def _pod_references(pod: PodTemplate, by_kind: dict[str, dict[tuple[str, str], Resource]]) -> list[Finding]:
    """The ServiceAccount, ConfigMaps and PVCs a pod names exist here (else the pod never starts)."""
    out: list[Finding] = []
    res, spec, prefix = pod.resource, pod.spec, pod.prefix
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if isinstance(sa, str) and sa != "default" and (pod.namespace, sa) not in by_kind.get("ServiceAccount", {}):
        out.append(
            res.finding(prefix + ["serviceAccountName"], f"ServiceAccount {sa!r} does not exist", "ref-serviceaccount")
        )
    configmaps = by_kind.get("ConfigMap", {})
    pvcs = by_kind.get("PersistentVolumeClaim", {})
    for index, volume in enumerate(as_list(spec.get("volumes"))):
        if not isinstance(volume, dict):
            continue
        where = prefix + ["volumes", index]
        out.extend(_missing_configmap(pod, _d(volume.get("configMap")), where + ["configMap", "name"], configmaps))
        for sindex, source in enumerate(as_list(_d(volume.get("projected")).get("sources"))):
            ref = _d(_d(source).get("configMap"))
            out.extend(
                _missing_configmap(pod, ref, where + ["projected", "sources", sindex, "configMap", "name"], configmaps)
            )
        claim = _d(volume.get("persistentVolumeClaim")).get("claimName")
        if claim is not None and (pod.namespace, key_of(claim)) not in pvcs:
            out.append(
                res.finding(
                    where + ["persistentVolumeClaim", "claimName"],
                    f"PersistentVolumeClaim {claim!r} does not exist",
                    "ref-pvc",
                )
            )
    for path, container in pod.containers():
        for index, source in enumerate(as_list(container.get("envFrom"))):
            ref = _d(_d(source).get("configMapRef"))
            out.extend(_missing_configmap(pod, ref, path + ["envFrom", index, "configMapRef", "name"], configmaps))
        for index, env in enumerate(as_list(container.get("env"))):
            ref = _d(_d(_d(env).get("valueFrom")).get("configMapKeyRef"))
            out.extend(
                _missing_configmap(pod, ref, path + ["env", index, "valueFrom", "configMapKeyRef", "name"], configmaps)
            )
    return out


def _route_findings(
    routes: dict[tuple[str, str], Resource], services: dict[tuple[str, str], Resource]
) -> list[Finding]:
    """A route's (HTTPRoute, GRPCRoute) Service backends exist and have the port it names (else
    the gateway answers 500, or UNAVAILABLE for gRPC)."""
    out: list[Finding] = []
    for route in routes.values():
        for rindex, rule in enumerate(as_list(route.spec.get("rules"))):
            for bindex, backend in enumerate(as_list(_d(rule).get("backendRefs"))):
                backend = _d(backend)
                if backend.get("kind", "Service") != "Service" or backend.get("group", "") != "":
                    continue
                namespace = backend.get("namespace", route.namespace)
                target = services.get((key_of(namespace), key_of(backend.get("name"))))
                path = ["spec", "rules", rindex, "backendRefs", bindex]
                if target is None:
                    out.append(
                        route.finding(
                            path + ["name"], f"Service {backend.get('name')!r} does not exist", "route-backend"
                        )
                    )
                elif "port" in backend and backend["port"] not in [
                    _d(p).get("port") for p in as_list(target.spec.get("ports"))
                ]:
                    out.append(
                        route.finding(
                            path + ["port"],
                            f"Service {backend.get('name')!r} has no port {backend['port']}",
                            "route-backend",
                        )
                    )
    return out


# --- distributed Jobs ------------------------------------------------------------------------


def _job_spec(pod: PodTemplate) -> tuple[dict, list]:
    if pod.resource.kind == "CronJob":
        return _d(_d(pod.resource.spec.get("jobTemplate")).get("spec")), ["spec", "jobTemplate", "spec"]
    return pod.resource.spec, ["spec"]


def _port_numbers(pod: PodTemplate, name_or_number: Any) -> set[int]:
    """The container port numbers a Service port's target (a name or a number) resolves to in ``pod``;
    ports of the wrong type are the schema check's findings, not this one's."""
    numbers = set()
    for _, container in pod.containers():
        for cport in as_list(container.get("ports")):
            cport = _d(cport)
            number = cport.get("containerPort")
            if isinstance(number, int) and name_or_number in (cport.get("name"), number):
                numbers.add(number)
    return numbers


def _admits(rules: Any, peers_key: str, port: int, members: Callable[[Any], bool]) -> tuple[bool, list[int]]:
    """Whether some rule admits ``port`` with exactly ``members``, and the rules that admit it more widely."""
    exact, wide = False, []
    for index, rule in enumerate(as_list(rules)):
        rule = _d(rule)
        ports = as_list(rule.get("ports"))
        if ports and not any(
            _d(p).get("port") in (port, None) and _d(p).get("protocol", "TCP") == "TCP" for p in ports
        ):
            continue
        peers = as_list(rule.get(peers_key))
        if not peers:
            wide.append(index)
            continue
        for peer in (_d(p) for p in peers):
            if (
                "podSelector" in peer
                and "namespaceSelector" not in peer
                and "ipBlock" not in peer
                and members(peer["podSelector"])
            ):
                exact = True
            elif peer:
                wide.append(index)
    return exact, wide


def check_worker_groups(resources: list[Resource], pods: list) -> list[Finding]:
    """The pods of an Indexed Job with a subdomain form one worker group (TensorFlow's
    MultiWorkerMirroredStrategy here): all must run at once, resolve each other through their
    own headless Service, and be able to reach each other on its port, and nobody else."""
    out: list[Finding] = []
    services = {(r.namespace, r.name): r for r in resources if r.kind == "Service"}
    policies = [r for r in resources if r.kind == "NetworkPolicy" and isinstance(r.spec.get("podSelector"), dict)]
    for pod in pods:
        spec, prefix = _job_spec(pod)
        subdomain = pod.spec.get("subdomain")
        if pod.resource.kind not in ("Job", "CronJob") or spec.get("completionMode") != "Indexed" or not subdomain:
            continue
        out.extend(_worker_count_findings(pod, spec, prefix))
        others = [p for p in pods if p is not pod and p.namespace == pod.namespace]
        svc = services.get((pod.namespace, key_of(subdomain)))
        if svc is None:
            out.append(
                pod.resource.finding(
                    pod.prefix + ["subdomain"], f"subdomain {subdomain!r} names no Service", "indexed-job-service"
                )
            )
            continue
        out.extend(_worker_service_findings(pod, svc, subdomain, others))
        out.extend(_worker_network_findings(pod, svc, policies, others))
    return out


def _worker_count_findings(pod: PodTemplate, spec: dict, prefix: list) -> list[Finding]:
    """Every index runs at once (parallelism = completions) and TRAINING_WORKERS, when set, says
    how many: workers that wait for each other deadlock when some of them are not scheduled."""
    out: list[Finding] = []
    res = pod.resource
    completions, parallelism = spec.get("completions"), spec.get("parallelism")
    if completions != parallelism:
        out.append(
            res.finding(
                prefix + ["parallelism"],
                f"parallelism {parallelism} != completions {completions}: workers that wait for each other "
                "must all run at once",
                "indexed-job-workers",
            )
        )
    for path, container in pod.containers():
        for index, env in enumerate(as_list(container.get("env"))):
            env = _d(env)
            if env.get("name") == "TRAINING_WORKERS" and str(env.get("value")) != str(completions):
                out.append(
                    res.finding(
                        path + ["env", index, "value"],
                        f"TRAINING_WORKERS {env.get('value')!r} but the Job runs {completions} indexes",
                        "indexed-job-workers",
                    )
                )
    return out


def _worker_service_findings(
    pod: PodTemplate, svc: Resource, subdomain: str, others: list[PodTemplate]
) -> list[Finding]:
    """The subdomain's Service is headless, publishes not-ready addresses and selects exactly this
    Job's pods: how the workers find each other before any of them is Ready."""
    selector = svc.spec.get("selector")
    problems = []
    if svc.spec.get("clusterIP") != "None":
        problems.append("is not headless (clusterIP: None)")
    if svc.spec.get("publishNotReadyAddresses") is not True:
        problems.append("does not publish not-ready addresses (peers must resolve before they are Ready)")
    if not map_selector_matches(selector, pod.labels):
        problems.append("does not select this Job's pods")
    stray = [p.resource.name for p in others if map_selector_matches(selector, p.labels)]
    if stray:
        problems.append(f"also selects the pods of {', '.join(sorted(stray))}")
    where = pod.prefix + ["subdomain"]
    return [
        pod.resource.finding(where, f"Service {subdomain!r} {problem}", "indexed-job-service") for problem in problems
    ]


def _worker_network_findings(
    pod: PodTemplate, svc: Resource, policies: list[Resource], others: list[PodTemplate]
) -> list[Finding]:
    """Where NetworkPolicies isolate the Job's pods, one admits the worker port between them, in
    both directions, and none admits it from pods outside the Job."""
    out: list[Finding] = []
    res = pod.resource
    worker_ports = set()
    for sport in as_list(svc.spec.get("ports")):
        worker_ports |= _port_numbers(pod, _d(sport).get("targetPort", _d(sport).get("port")))
    selecting = [
        p for p in policies if p.namespace == pod.namespace and selector_matches(p.spec["podSelector"], pod.labels)
    ]

    def members(peer_selector: Any) -> bool:
        return selector_matches(peer_selector, pod.labels) and not any(
            selector_matches(peer_selector, p.labels) for p in others
        )

    for port in sorted(p for p in worker_ports if isinstance(p, int)):
        for direction, rules_key, peers_key in (("Ingress", "ingress", "from"), ("Egress", "egress", "to")):
            enforced = [
                p
                for p in selecting
                if direction in as_list(p.spec.get("policyTypes"))
                or (direction == "Ingress" and not p.spec.get("policyTypes"))
            ]
            if not enforced:
                continue
            results = [(p, *_admits(p.spec.get(rules_key), peers_key, port, members)) for p in enforced]
            if not any(exact for _, exact, _ in results):
                out.append(
                    res.finding(
                        pod.prefix[:-1] + ["metadata", "labels"],
                        f"no NetworkPolicy admits {direction.lower()} on worker port {port} between this Job's pods",
                        "indexed-job-network",
                    )
                )
            if direction == "Ingress":
                for policy, _, wide in results:
                    for index in wide:
                        out.append(
                            policy.finding(
                                ["spec", "ingress", index],
                                f"admits worker port {port} of {res.kind}/{res.name} from pods outside the Job",
                                "indexed-job-network",
                            )
                        )
    return out


# --- Argo CD ---------------------------------------------------------------------------------


def _is_wildcard(value: object) -> bool:
    return isinstance(value, str) and ("*" in value)


def _permits(entries: Any, group: str, kind: str, name: str | None = None) -> bool:
    """Whether a white- or blacklist holds (group, kind), and the object's name where the entry
    names one (Argo CD 3's ``clusterResourceWhitelist[].name``)."""
    for entry in as_list(entries):
        entry = _d(entry)
        named = entry.get("name") in (None, "", "*") or name is None or entry.get("name") == name
        if entry.get("group", "") in (group, "*") and entry.get("kind") in (kind, "*") and named:
            return True
    return False


def _locked(spec: dict) -> bool:
    """A project that blacklists every namespaced kind (the locked ``default``) needs no whitelist."""
    return any(
        _d(e).get("group") == "*" and _d(e).get("kind") == "*" for e in as_list(spec.get("namespaceResourceBlacklist"))
    )


def _norm_repo(url: object) -> str:
    return str(url or "").rstrip("/").removesuffix(".git")


def check_argocd(root: Path, argocd_resources: list[Resource], deployed: dict[str, Rendered | None]) -> list[Finding]:
    """``deployed`` maps a repository-relative path to the Rendered object for it (or None when
    the path is not one the validator rendered)."""
    out: list[Finding] = []
    projects = {r.name: r for r in argocd_resources if r.kind == "AppProject"}
    for project in projects.values():
        out.extend(_project_wildcards(project))
    applications = [r for r in argocd_resources if r.kind == "Application"]
    out.extend(_unsynced_overlays(applications, deployed))
    for app in applications:
        out.extend(_application_findings(root, app, projects, deployed))
    return out


def _project_wildcards(project: Resource) -> list[Finding]:
    """An AppProject that grants a repo, destination, source namespace or kind by wildcard (or
    every namespaced kind, by not listing them) bounds nothing its Applications do."""
    out: list[Finding] = []
    spec = project.spec
    for index, repo in enumerate(as_list(spec.get("sourceRepos"))):
        if _is_wildcard(repo):
            out.append(
                project.finding(
                    ["spec", "sourceRepos", index], f"wildcard source repo {repo!r}", "argocd-project-wildcard"
                )
            )
    for index, dest in enumerate(as_list(spec.get("destinations"))):
        for key in ("server", "namespace", "name"):
            # The one wildcard admitted: the pull-request previews' namespaces, pr-<number>,
            # which cannot be listed beforehand (generator/synthesis/previews.py).
            if _is_wildcard(_d(dest).get(key)) and not (key == "namespace" and dest["namespace"] == PREVIEW_NAMESPACES):
                out.append(
                    project.finding(
                        ["spec", "destinations", index, key],
                        f"wildcard destination {key} {_d(dest).get(key)!r}",
                        "argocd-project-wildcard",
                    )
                )
    if "namespaceResourceWhitelist" not in spec and not _locked(spec):
        out.append(
            project.finding(
                "spec.namespaceResourceWhitelist",
                "not set, so every namespaced kind is allowed: list the kinds the project deploys",
                "argocd-project-wildcard",
            )
        )
    for index, namespace in enumerate(as_list(spec.get("sourceNamespaces"))):
        if _is_wildcard(namespace):
            out.append(
                project.finding(
                    ["spec", "sourceNamespaces", index],
                    f"wildcard source namespace {namespace!r}",
                    "argocd-project-wildcard",
                )
            )
    for list_name in ("clusterResourceWhitelist", "namespaceResourceWhitelist"):
        for index, entry in enumerate(as_list(spec.get(list_name))):
            for key in ("group", "kind"):
                if _is_wildcard(_d(entry).get(key)):
                    out.append(
                        project.finding(
                            ["spec", list_name, index, key],
                            f"wildcard {key} in {list_name}",
                            "argocd-project-wildcard",
                        )
                    )
    return out


def _unsynced_overlays(applications: list[Resource], deployed: dict[str, Rendered | None]) -> list[Finding]:
    """Environment overlays no Application deploys: edits to them would never reach a cluster."""
    referenced: set[str] = set()
    for app in applications:
        for source in [app.spec.get("source")] + as_list(app.spec.get("sources")):
            if isinstance(source, dict) and isinstance(source.get("path"), str):
                referenced.add(Path(source["path"]).as_posix().strip("/"))
    return [
        Finding(
            rendered.name,
            "",
            "",
            "",
            f"no Argo CD Application deploys {rel}: add the environment "
            "to platform.yaml (make synth writes its Application) or remove the overlay",
            "argocd-overlay-synced",
        )
        for rel, rendered in sorted(deployed.items())
        if rendered is not None and rel.startswith("overlays/") and rel not in referenced
    ]


def _application_findings(
    root: Path, app: Resource, projects: dict[str, Resource], deployed: dict[str, Rendered | None]
) -> list[Finding]:
    """One Application: its AppProject exists and permits its repos and destination, and each
    source path exists, builds, lands in the destination namespace and deploys permitted kinds."""
    spec = app.spec
    sources: list[tuple[list[str | int], dict]] = (
        [(["spec", "source"], spec["source"])] if isinstance(spec.get("source"), dict) else []
    )
    sources += [(["spec", "sources", i], s) for i, s in enumerate(as_list(spec.get("sources"))) if isinstance(s, dict)]
    dest = _d(spec.get("destination"))
    app_project = projects.get(key_of(spec.get("project")))
    if app_project is None:
        out = [
            app.finding(
                "spec.project", f"AppProject {spec.get('project')!r} is not defined in argocd/", "argocd-project"
            )
        ]
    else:
        out = _project_permits(app, app_project, sources, dest)
    for path, source in sources:
        app_path = source.get("path")
        if not isinstance(app_path, str) or source.get("chart"):
            continue
        rendered, problem = _source_build(root, app_path, deployed)
        if problem:
            out.append(app.finding(path + ["path"], problem, "argocd-app-path"))
        if rendered is None:
            continue
        out.extend(_destination_namespace(app, app_path, dest, rendered))
        out.extend(hpa_replicas(app, rendered.resources))
        if app_project is not None:
            out.extend(_kind_findings(app, path, app_project, rendered))
    return out


def _project_permits(
    app: Resource, app_project: Resource, sources: list[tuple[list[str | int], dict]], dest: dict
) -> list[Finding]:
    """The Application's AppProject permits each of its source repos and its destination (else
    Argo CD refuses to sync it)."""
    out: list[Finding] = []
    pspec = app_project.spec
    repos = [_norm_repo(r) for r in as_list(pspec.get("sourceRepos"))]
    for path, source in sources:
        if _norm_repo(source.get("repoURL")) not in repos:
            out.append(
                app.finding(
                    path + ["repoURL"],
                    f"AppProject {app_project.name!r} does not permit repo {source.get('repoURL')!r}",
                    "argocd-project",
                )
            )
    dests = [_d(d) for d in as_list(pspec.get("destinations"))]
    if not any(
        d.get("namespace") == dest.get("namespace")
        and (d.get("server") == dest.get("server") if "server" in dest else d.get("name") == dest.get("name"))
        for d in dests
    ):
        out.append(
            app.finding(
                "spec.destination",
                f"AppProject {app_project.name!r} does not permit destination "
                f"{dest.get('server') or dest.get('name')} namespace {dest.get('namespace')!r}",
                "argocd-project",
            )
        )
    return out


def _source_build(
    root: Path, app_path: str, deployed: dict[str, Rendered | None]
) -> tuple[Rendered | None, str | None]:
    """What a source path renders to, when it exists in the repository and built; else why not
    (None when it is a plain directory of manifests the validator did not render)."""
    directory = (root / app_path).resolve()
    if not directory.is_dir() or root.resolve() not in (directory, *directory.parents):
        return None, f"path {app_path!r} does not exist in the repository"
    rendered = deployed.get(Path(app_path).as_posix().strip("/"))
    if rendered is None:
        if not any(directory.glob("*.y*ml")):
            return None, f"path {app_path!r} holds no kustomization and no manifests"
        return None, None
    if not rendered.ok:
        return None, f"path {app_path!r} does not build (see the {rendered.name} findings)"
    return rendered, None


def _destination_namespace(app: Resource, app_path: str, dest: dict, rendered: Rendered) -> list[Finding]:
    """The Application's destination namespace is the one its path's objects are written for."""
    namespaces = (
        {rendered.namespace}
        if rendered.namespace
        else {r.namespace for r in rendered.resources if r.namespace and r.kind not in CLUSTER_SCOPED}
    )
    if namespaces and key_of(dest.get("namespace")) not in namespaces:
        return [
            app.finding(
                "spec.destination.namespace",
                f"{dest.get('namespace')!r} differs from the namespace of {app_path!r} "
                f"({', '.join(sorted(namespaces))})",
                "argocd-app-namespace",
            )
        ]
    return []


def _kind_findings(app: Resource, path: list[str | int], app_project: Resource, rendered: Rendered) -> list[Finding]:
    """The AppProject whitelists (and does not blacklist) every kind the source path deploys, and
    every cluster-scoped object by name where the whitelist names them: Argo CD refuses a sync
    with any object it does not permit."""
    out: list[Finding] = []
    pspec = app_project.spec
    for res in sorted(rendered.resources, key=lambda r: (r.group, r.kind, r.name)):
        group, kind = res.group, res.kind
        if kind in CLUSTER_SCOPED:
            if not _permits(pspec.get("clusterResourceWhitelist"), group, kind, res.name):
                message = (
                    f"deploys cluster-scoped {kind} {res.name!r} (group {group!r}) "
                    f"but AppProject {app_project.name!r} does not whitelist it"
                )
                out.append(app.finding(path + ["path"], message, "argocd-project-kinds"))
        else:
            white, black = pspec.get("namespaceResourceWhitelist"), pspec.get("namespaceResourceBlacklist")
            if (white is not None and not _permits(white, group, kind)) or _permits(black, group, kind):
                message = (
                    f"deploys {kind} {res.name!r} (group {group!r}) but AppProject {app_project.name!r} "
                    "does not permit it"
                )
                out.append(app.finding(path + ["path"], message, "argocd-project-kinds"))
    return out
