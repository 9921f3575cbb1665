"""Policy checks on one rendered overlay: restricted pod security (field by field), read-only
root filesystem, resources, probes, image references, PDBs, NetworkPolicy coverage, service
account tokens, Job limits and Secrets.

Every check has an id; an object is exempted from one check by the annotation
``validate.gitops/skip-<check-id>: "<reason>"`` (see ``engine.apply_exemptions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generator import pod_security as pss
from generator.validate.kube import PodTemplate, as_list, key_of, parse_image, pod_template, selector_matches
from generator.validate.model import Finding, Resource
from services.contract import TOTAL_WEIGHT

CHECKS = {
    "pss-privileged": "containers are not privileged",
    "pss-host-namespaces": "no hostNetwork, hostPID or hostIPC",
    "pss-host-ports": "no hostPort",
    "pss-host-process": "no Windows HostProcess containers",
    "pss-volume-types": "only volume types the restricted profile allows",
    "pss-proc-mount": "procMount is Default",
    "pss-selinux": "no custom SELinux user or role",
    "pss-sysctls": "only safe sysctls",
    "pss-apparmor": "AppArmor profile, if set, is RuntimeDefault or Localhost",
    "pss-privilege-escalation": "allowPrivilegeEscalation is false",
    "pss-run-as-non-root": "runAsNonRoot is true",
    "pss-run-as-user": "runAsUser is set (pod or container) and is not 0",
    "pss-seccomp": "seccompProfile is RuntimeDefault or Localhost",
    "pss-capabilities": "capabilities drop ALL and add nothing but NET_BIND_SERVICE",
    "read-only-root-fs": "readOnlyRootFilesystem is true",
    "resources": "cpu and memory requests and limits are set",
    "probes": "server containers have readiness and liveness probes",
    "image-tag": "images are pinned: a tag other than latest, or a digest",
    "image-digest": "images carry a digest where the environment requires it",
    "pdb": "a Deployment with 2 or more replicas is covered by a PodDisruptionBudget",
    "pdb-allows-disruption": "a PodDisruptionBudget leaves room for at least one voluntary eviction",
    "route-weights": f"an HTTPRoute's or GRPCRoute's rule's backend weights add up to {TOTAL_WEIGHT}, and a "
    "GRPCRoute's are those of the HTTPRoute of its name (one canary weight moves both)",
    "route-scope": "an HTTPRoute or GRPCRoute names its hostnames and its Gateway listener (sectionName), and each "
    "rule matches paths (gRPC: a service's method), none of them every path or method (a catch-all routes "
    "/metrics, the metadata and reflection too)",
    "network-policy": "every pod is selected by a NetworkPolicy",
    "automount-token": "automountServiceAccountToken is false",
    "job-limits": "Jobs set backoffLimit (or backoffLimitPerIndex) and ttlSecondsAfterFinished",
    "secret-data": "no Secret carries data in git",
    "argocd-hook": "an Argo CD hook with a fixed name is re-created on every sync (BeforeHookCreation)",
    "train": "an overlay runs training (Jobs or CronJobs labelled app.kubernetes.io/component: training) "
    "exactly when platform.yaml's environment sets train: true",
}
#: The label the generator puts on every training object (what ``train`` looks for).
TRAINING_LABEL = ("app.kubernetes.io/component", "training")

ALLOWED_VOLUME_TYPES = frozenset(pss.ALLOWED_VOLUME_TYPES)
SAFE_SYSCTLS = frozenset(pss.SAFE_SYSCTLS)


@dataclass
class Environment:
    """What an environment asks of its overlay (from platform.yaml)."""

    require_digest: bool = False
    namespace: str = ""
    #: platform.yaml's ``train`` (None: the overlay is not an environment of platform.yaml).
    train: bool | None = None
    #: The Application that must sync the overlay, and the AppProject it must name ("": unknown).
    application: str = ""
    project: str = ""


def _d(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _effective(pod_sc: dict, container_sc: dict, key: str) -> Any:
    """A container's security setting, falling back to the pod's (as the kubelet does)."""
    return container_sc[key] if key in container_sc else pod_sc.get(key)


def pod_security(pod: PodTemplate) -> list[Finding]:
    """The restricted Pod Security Standard, field by field, and a read-only root filesystem:
    first what the pod sets for all its containers, then each container (with the pod's
    securityContext as the fallback the kubelet applies)."""
    res = pod.resource
    out: list[Finding] = []
    pod_sc = _d(pod.spec.get("securityContext"))
    _pod_fields(pod, pod_sc, out)
    _pod_security_context(res, pod.prefix + ["securityContext"], pod_sc, out)
    _apparmor_annotations(res, pod.prefix, out)
    pod_seccomp = _d(pod_sc.get("seccompProfile")).get("type")
    for path, container in pod.containers():
        cname = container.get("name", "?")
        sc = _d(container.get("securityContext"))
        _container_isolation(res, path, cname, container, sc, out)
        _container_identity(res, path + ["securityContext"], cname, pod_sc, sc, out)
        _container_hardening(res, path + ["securityContext"], cname, sc, pod_seccomp, out)
    return out


def _pod_fields(pod: PodTemplate, pod_sc: dict, out: list[Finding]) -> None:
    """Host namespaces, volume types and sysctls: pod-wide fields that reach past the container."""
    res, spec, prefix = pod.resource, pod.spec, pod.prefix
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key) is True:
            out.append(res.finding(prefix + [key], f"{key} must not be true", "pss-host-namespaces"))
    for index, volume in enumerate(as_list(spec.get("volumes"))):
        if isinstance(volume, dict):
            kinds = [k for k in volume if k != "name"]
            bad = [k for k in kinds if k not in ALLOWED_VOLUME_TYPES]
            if bad:
                out.append(
                    res.finding(
                        prefix + ["volumes", index, bad[0]],
                        f"volume type {bad[0]!r} is not allowed by the restricted profile",
                        "pss-volume-types",
                    )
                )
    for index, sysctl in enumerate(as_list(pod_sc.get("sysctls"))):
        if isinstance(sysctl, dict) and key_of(sysctl.get("name")) not in SAFE_SYSCTLS:
            out.append(
                res.finding(
                    prefix + ["securityContext", "sysctls", index, "name"],
                    f"sysctl {sysctl.get('name')!r} is not in the safe set",
                    "pss-sysctls",
                )
            )


def _pod_security_context(res: Resource, path: list, pod_sc: dict, out: list[Finding]) -> None:
    """What the pod's securityContext may not set for its containers (each container must still
    say, or inherit, the required values: see ``_container_identity`` and ``_container_hardening``)."""
    pod_seccomp = _d(pod_sc.get("seccompProfile")).get("type")
    if pod_seccomp is not None and pod_seccomp not in pss.PROFILE_TYPES:
        out.append(
            res.finding(
                path + ["seccompProfile", "type"],
                f"seccompProfile {pod_seccomp!r} must be RuntimeDefault or Localhost",
                "pss-seccomp",
            )
        )
    if pod_sc.get("runAsUser") == 0:
        out.append(res.finding(path + ["runAsUser"], "runAsUser must not be 0", "pss-run-as-user"))
    if pod_sc.get("runAsNonRoot") is False:
        out.append(res.finding(path + ["runAsNonRoot"], "runAsNonRoot must not be false", "pss-run-as-non-root"))
    _selinux(res, path, pod_sc, out)
    _apparmor(res, path, pod_sc, out)
    _host_process(res, path, pod_sc, out)


def _apparmor_annotations(res: Resource, prefix: list, out: list[Finding]) -> None:
    """The AppArmor profiles set the old way, by pod template annotation, are allowed ones."""
    annotations = (
        _d(_d(_d(res.doc.get("spec")).get("template")).get("metadata")).get("annotations")
        if res.kind != "Pod"
        else res.annotations
    )
    for key, value in _d(annotations).items():
        if str(key).startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or str(value).startswith("localhost/")
        ):
            out.append(
                res.finding(
                    prefix[:-1] + ["metadata", "annotations", key],
                    f"AppArmor profile {value!r} is not allowed",
                    "pss-apparmor",
                )
            )


def _container_isolation(res: Resource, path: list, cname: str, container: dict, sc: dict, out: list[Finding]) -> None:
    """What would let a container out of its isolation: privileged, host ports, an unmasked
    /proc, a custom SELinux user or role, an AppArmor profile off the list, a HostProcess."""
    sc_path = path + ["securityContext"]
    if sc.get("privileged") is True:
        out.append(res.finding(sc_path + ["privileged"], f"container {cname!r} is privileged", "pss-privileged"))
    for pindex, port in enumerate(as_list(container.get("ports"))):
        if isinstance(port, dict) and port.get("hostPort") not in (None, 0):
            out.append(res.finding(path + ["ports", pindex, "hostPort"], "hostPort must not be set", "pss-host-ports"))
    if sc.get("procMount") not in (None, "Default"):
        out.append(res.finding(sc_path + ["procMount"], "procMount must be Default", "pss-proc-mount"))
    _selinux(res, sc_path, sc, out)
    _apparmor(res, sc_path, sc, out)
    _host_process(res, sc_path, sc, out)


def _container_identity(res: Resource, sc_path: list, cname: str, pod_sc: dict, sc: dict, out: list[Finding]) -> None:
    """Who the container runs as: never root, never gaining privileges, under a numeric UID set
    here or in the pod's securityContext."""
    if sc.get("allowPrivilegeEscalation") is not False:
        out.append(
            res.finding(
                sc_path + ["allowPrivilegeEscalation"],
                f"container {cname!r}: allowPrivilegeEscalation must be false",
                "pss-privilege-escalation",
            )
        )
    if _effective(pod_sc, sc, "runAsNonRoot") is not True:
        out.append(
            res.finding(
                sc_path + ["runAsNonRoot"],
                f"container {cname!r}: runAsNonRoot must be true (here or in the pod securityContext)",
                "pss-run-as-non-root",
            )
        )
    user = _effective(pod_sc, sc, "runAsUser")
    if sc.get("runAsUser") == 0:
        out.append(
            res.finding(sc_path + ["runAsUser"], f"container {cname!r}: runAsUser must not be 0", "pss-run-as-user")
        )
    elif user is None:
        # Restricted allows it unset, but then the kubelet must trust the image's USER, and a
        # non-numeric USER fails runAsNonRoot at start: the repository requires a number.
        out.append(
            res.finding(
                sc_path + ["runAsUser"],
                f"container {cname!r}: runAsUser is not set (here or in the pod securityContext); set a non-zero UID",
                "pss-run-as-user",
            )
        )


def _container_hardening(
    res: Resource, sc_path: list, cname: str, sc: dict, pod_seccomp: Any, out: list[Finding]
) -> None:
    """What the container must switch off: a seccomp profile (its own or the pod's), every
    capability but NET_BIND_SERVICE, and writes to its root filesystem."""
    seccomp = _d(sc.get("seccompProfile")).get("type") if "seccompProfile" in sc else pod_seccomp
    if seccomp not in pss.PROFILE_TYPES:
        out.append(
            res.finding(
                sc_path + ["seccompProfile", "type"],
                f"container {cname!r}: seccompProfile.type must be RuntimeDefault or Localhost "
                "(here or in the pod securityContext)",
                "pss-seccomp",
            )
        )
    caps = _d(sc.get("capabilities"))
    if "ALL" not in as_list(caps.get("drop")):
        out.append(
            res.finding(
                sc_path + ["capabilities", "drop"],
                f"container {cname!r}: capabilities must drop ALL",
                "pss-capabilities",
            )
        )
    for cindex, cap in enumerate(as_list(caps.get("add"))):
        if cap not in pss.ADDABLE_CAPABILITIES:
            out.append(
                res.finding(
                    sc_path + ["capabilities", "add", cindex],
                    f"container {cname!r}: capability {cap!r} must not be added",
                    "pss-capabilities",
                )
            )
    if sc.get("readOnlyRootFilesystem") is not True:
        out.append(
            res.finding(
                sc_path + ["readOnlyRootFilesystem"],
                f"container {cname!r}: readOnlyRootFilesystem must be true (mount an emptyDir where it writes)",
                "read-only-root-fs",
            )
        )


def _selinux(res: Resource, path: list, sc: dict, out: list[Finding]) -> None:
    opts = _d(sc.get("seLinuxOptions"))
    for key in ("user", "role"):
        if opts.get(key):
            out.append(
                res.finding(path + ["seLinuxOptions", key], f"seLinuxOptions.{key} must not be set", "pss-selinux")
            )
    if opts.get("type") not in (None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"):
        out.append(
            res.finding(
                path + ["seLinuxOptions", "type"], f"SELinux type {opts.get('type')!r} is not allowed", "pss-selinux"
            )
        )


def _host_process(res: Resource, path: list, sc: dict, out: list[Finding]) -> None:
    if _d(sc.get("windowsOptions")).get("hostProcess") is True:
        out.append(
            res.finding(path + ["windowsOptions", "hostProcess"], "hostProcess must not be true", "pss-host-process")
        )


def _apparmor(res: Resource, path: list, sc: dict, out: list[Finding]) -> None:
    kind = _d(sc.get("appArmorProfile")).get("type")
    if kind is not None and kind not in pss.PROFILE_TYPES:
        out.append(
            res.finding(path + ["appArmorProfile", "type"], f"AppArmor profile {kind!r} is not allowed", "pss-apparmor")
        )


def resources_and_probes(pod: PodTemplate) -> list[Finding]:
    res, out = pod.resource, []
    is_server = res.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}
    for path, container in pod.containers():
        if path[-2] == "ephemeralContainers":
            continue
        cname = container.get("name", "?")
        resources = _d(container.get("resources"))
        for section in ("requests", "limits"):
            values = _d(resources.get(section))
            for key in ("cpu", "memory"):
                if key not in values:
                    out.append(
                        res.finding(
                            path + ["resources", section, key],
                            f"container {cname!r}: {section}.{key} is not set",
                            "resources",
                        )
                    )
        if is_server and path[-2] == "containers":
            for probe in ("readinessProbe", "livenessProbe"):
                if not isinstance(container.get(probe), dict):
                    out.append(res.finding(path + [probe], f"container {cname!r}: {probe} is not set", "probes"))
    return out


def _image_references(pod: PodTemplate) -> list[tuple[list, object]]:
    """(path, reference) of every image the pod runs or mounts: each container's, each image volume's."""
    found: list[tuple[list, object]] = [(path + ["image"], c.get("image")) for path, c in pod.containers()]
    for index, volume in enumerate(as_list(pod.spec.get("volumes"))):
        if isinstance(volume, dict) and isinstance(volume.get("image"), dict):
            found.append((pod.prefix + ["volumes", index, "image", "reference"], volume["image"].get("reference")))
    return found


def images(pod: PodTemplate, env: Environment) -> list[Finding]:
    """Every image is pinned (a tag other than latest, or a digest), and by digest where the
    environment requires it: containers' images and image volumes' references alike."""
    res, out = pod.resource, []
    for path, image in _image_references(pod):
        if not isinstance(image, str):
            continue
        _, tag, digest = parse_image(image)
        if digest is None and tag is None:
            out.append(res.finding(path, f"image {image!r} has no tag (means :latest)", "image-tag"))
        elif digest is None and tag == "latest":
            out.append(res.finding(path, f"image {image!r} uses the mutable tag 'latest'", "image-tag"))
        if env.require_digest and digest is None:
            out.append(
                res.finding(
                    path,
                    f"image {image!r} has no digest; this environment "
                    "requires @sha256:... (platform.yaml requireDigest)",
                    "image-digest",
                )
            )
    return out


def automount(pod: PodTemplate, accounts: dict[tuple[str, str], Resource]) -> list[Finding]:
    spec = pod.spec
    value = spec.get("automountServiceAccountToken")
    if value is False:
        return []
    if value is None:
        sa = accounts.get((pod.namespace, key_of(spec.get("serviceAccountName") or "default")))
        if sa is not None and sa.doc.get("automountServiceAccountToken") is False:
            return []
    return [
        pod.resource.finding(
            pod.prefix + ["automountServiceAccountToken"],
            "automountServiceAccountToken must be false (in the pod spec or its ServiceAccount)",
            "automount-token",
        )
    ]


def job_limits(res: Resource) -> list[Finding]:
    if res.kind == "Job":
        spec, prefix = res.spec, ["spec"]
    elif res.kind == "CronJob":
        spec, prefix = _d(_d(res.spec.get("jobTemplate")).get("spec")), ["spec", "jobTemplate", "spec"]
    else:
        return []
    out = []
    # An Indexed Job may bound retries per index instead (backoffLimitPerIndex).
    if not isinstance(spec.get("backoffLimit"), int) and not isinstance(spec.get("backoffLimitPerIndex"), int):
        out.append(res.finding(prefix + ["backoffLimit"], "backoffLimit is not set", "job-limits"))
    if not isinstance(spec.get("ttlSecondsAfterFinished"), int):
        out.append(
            res.finding(prefix + ["ttlSecondsAfterFinished"], "ttlSecondsAfterFinished is not set", "job-limits")
        )
    return out


HOOK = "argocd.argoproj.io/hook"
HOOK_DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"
HELM_HOOK_DELETE_POLICY = "helm.sh/hook-delete-policy"


def argocd_hook(res: Resource) -> list[Finding]:
    """A named hook is created once and then kept (a Job never runs again) unless its delete policy
    says BeforeHookCreation; Argo CD's default for hooks without one changed (argo-cd's
    gitops-engine: "no default deletion policy"), so it must be explicit."""
    phases = str(res.annotations.get(HOOK, "")).replace(" ", "").split(",")
    if HOOK not in res.annotations or phases == ["Skip"] or "generateName" in res.metadata:
        return []  # Skip marks a manifest Argo CD does not apply: not a hook
    policies = str(res.annotations.get(HOOK_DELETE_POLICY, "")).replace(" ", "").split(",")
    helm_policies = str(res.annotations.get(HELM_HOOK_DELETE_POLICY, "")).replace(" ", "").split(",")
    if "BeforeHookCreation" in policies or "before-hook-creation" in helm_policies:  # Argo CD honours both
        return []
    return [
        res.finding(
            ["metadata", "annotations", HOOK_DELETE_POLICY],
            f"the {res.annotations[HOOK]} hook has a fixed name and no BeforeHookCreation delete policy: "
            "Argo CD creates it once and never runs it again",
            "argocd-hook",
        )
    ]


def secret_data(res: Resource) -> list[Finding]:
    if res.kind != "Secret" or res.api_version != "v1":
        return []
    return [
        res.finding(
            [key], f"Secret carries {key} in git; use a sealed/external secret or create it out of band", "secret-data"
        )
        for key in ("data", "stringData")
        if res.doc.get(key)
    ]


def check_overlay(resources: list[Resource], env: Environment) -> list[Finding]:
    out: list[Finding] = []
    accounts = {(r.namespace, r.name): r for r in resources if r.kind == "ServiceAccount"}
    pods = [p for p in (pod_template(r) for r in resources) if p is not None]
    for res in resources:
        out.extend(job_limits(res))
        out.extend(argocd_hook(res))
        out.extend(secret_data(res))
    for pod in pods:
        out.extend(pod_security(pod))
        out.extend(resources_and_probes(pod))
        out.extend(images(pod, env))
        out.extend(automount(pod, accounts))
    out.extend(pdb_coverage(resources, pods))
    out.extend(pdb_headroom(resources, pods))
    out.extend(route_weights(resources))
    out.extend(route_scope(resources))
    out.extend(network_policy_coverage(resources, pods))
    out.extend(training_as_declared(resources, env))
    return out


def training_as_declared(resources: list[Resource], env: Environment) -> list[Finding]:
    """A serve-only environment (``train: false``, the default) must not train: a retrain would
    publish other bytes than the version reviewed. One with ``train: true`` must include its
    strategy's training component, or a pinned version its store lacks is never trained."""
    if env.train is None or not resources:
        return []
    key, value = TRAINING_LABEL
    training = [r for r in resources if r.kind in ("Job", "CronJob") and _d(r.metadata.get("labels")).get(key) == value]
    if not env.train:
        return [
            r.finding(
                ["metadata", "labels", key],
                "platform.yaml makes this environment serve-only (train: false): remove the training "
                "component from the overlay's components, or set train: true",
                "train",
            )
            for r in training
        ]
    if not any(r.kind == "Job" for r in training):
        overlay = resources[0].overlay
        return [
            Finding(
                overlay,
                "",
                "",
                "",
                "platform.yaml sets train: true but the overlay renders no training Job: add "
                "../components/training-<strategy> to its components",
                "train",
            )
        ]
    return []


def _autoscalers(resources: list[Resource]) -> dict[tuple[str, str, str], Resource]:
    """Each HorizontalPodAutoscaler by what it scales: (namespace, target kind, target name)."""
    return {
        (
            r.namespace,
            key_of(_d(r.spec.get("scaleTargetRef")).get("kind")),
            key_of(_d(r.spec.get("scaleTargetRef")).get("name")),
        ): r
        for r in resources
        if r.kind == "HorizontalPodAutoscaler"
    }


def pdb_coverage(resources: list[Resource], pods: list[PodTemplate]) -> list[Finding]:
    out = []
    pdbs = [r for r in resources if r.kind == "PodDisruptionBudget"]
    hpas = _autoscalers(resources)
    for pod in pods:
        res = pod.resource
        if res.kind != "Deployment":
            continue
        replicas = res.spec.get("replicas", 1)
        hpa = hpas.get((res.namespace, "Deployment", res.name))
        min_replicas = hpa.spec.get("minReplicas", 1) if hpa else None
        needs = (isinstance(replicas, int) and replicas >= 2) or (isinstance(min_replicas, int) and min_replicas >= 2)
        if not needs:
            continue
        covered = any(
            p.namespace == res.namespace
            and isinstance(p.spec.get("selector"), dict)
            and selector_matches(p.spec["selector"], pod.labels)
            for p in pdbs
        )
        if not covered:
            why = f"replicas {replicas}" if not hpa else f"HPA minReplicas {min_replicas}"
            out.append(res.finding("spec.replicas", f"{why} but no PodDisruptionBudget selects its pods", "pdb"))
    return out


def network_policy_coverage(resources: list[Resource], pods: list[PodTemplate]) -> list[Finding]:
    policies = [r for r in resources if r.kind == "NetworkPolicy"]
    out = []
    for pod in pods:
        covered = any(
            p.namespace == pod.namespace and selector_matches(p.spec.get("podSelector"), pod.labels)
            for p in policies
            if isinstance(p.spec.get("podSelector"), dict)
        )
        if not covered:
            out.append(
                pod.resource.finding(
                    pod.prefix[:-1] + ["metadata", "labels"], "no NetworkPolicy selects these pods", "network-policy"
                )
            )
    return out


def _replicas(res: Resource, hpas: dict) -> int | None:
    """The fewest replicas a workload runs: HPA minReplicas if an HPA scales it, else spec.replicas."""
    hpa = hpas.get((res.namespace, res.kind, res.name))
    value = hpa.spec.get("minReplicas", 1) if hpa is not None else res.spec.get("replicas", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def pdb_headroom(resources: list[Resource], pods: list[PodTemplate]) -> list[Finding]:
    """A PDB that can never allow an eviction blocks every node drain."""
    hpas = _autoscalers(resources)
    out = []
    for pdb in (r for r in resources if r.kind == "PodDisruptionBudget"):
        selector = pdb.spec.get("selector")
        if not isinstance(selector, dict):
            continue
        max_unavailable, min_available = pdb.spec.get("maxUnavailable"), pdb.spec.get("minAvailable")
        if max_unavailable in (0, "0%"):
            out.append(
                pdb.finding(
                    "spec.maxUnavailable",
                    "maxUnavailable 0 blocks every voluntary eviction (node drains hang)",
                    "pdb-allows-disruption",
                )
            )
            continue
        if min_available == "100%":
            out.append(
                pdb.finding(
                    "spec.minAvailable", "minAvailable 100% blocks every voluntary eviction", "pdb-allows-disruption"
                )
            )
            continue
        if not isinstance(min_available, int) or isinstance(min_available, bool):
            continue
        for pod in pods:
            if pod.namespace != pdb.namespace or pod.resource.kind not in ("Deployment", "StatefulSet"):
                continue
            if not selector_matches(selector, pod.labels):
                continue
            replicas = _replicas(pod.resource, hpas)
            if replicas is not None and min_available >= replicas:
                out.append(
                    pdb.finding(
                        "spec.minAvailable",
                        f"minAvailable {min_available} >= the {replicas} "
                        f"replica(s) of {pod.resource.kind}/{pod.resource.name}: no eviction is ever "
                        "allowed (node drains hang)",
                        "pdb-allows-disruption",
                    )
                )
    return out


#: The Gateway API route kinds the scope and weight checks read.
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")


def _catch_all(match: dict) -> bool:
    """A match that takes every path: none at all, or the prefix ``/``."""
    path = _d(match.get("path"))
    return not path or (path.get("type", "PathPrefix") == "PathPrefix" and path.get("value", "/") == "/")


def _grpc_catch_all(match: dict) -> bool:
    """A GRPCRoute match that takes every method of a service, or of every service: no ``method``,
    or one that names no method (headers alone select no method)."""
    return not _d(match.get("method")).get("method")


def _rule_scope(route: Resource, index: int, rule: dict) -> list[Finding]:
    """A finding if rule ``index`` of ``route`` has no matches or one that takes everything."""
    matches = as_list(rule.get("matches"))
    grpc = route.kind == "GRPCRoute"
    catch_all = _grpc_catch_all if grpc else _catch_all
    if matches and not any(catch_all(_d(match)) for match in matches):
        return []
    what = (
        "matches every method: name the methods clients may call (the Predict method of its service)"
        if grpc
        else "matches every path: name the paths clients may call (the predict routes)"
    )
    return [route.finding(["spec", "rules", index, "matches"], what, "route-scope")]


def route_scope(resources: list[Resource]) -> list[Finding]:
    """What a route exposes is what it names: hosts, the listener, and the paths (or gRPC methods)
    of each rule. Without them a route takes every host of every listener, and every path or
    method of its backends."""
    out = []
    for route in (r for r in resources if r.kind in ROUTE_KINDS):
        if not as_list(route.spec.get("hostnames")):
            out.append(route.finding("spec.hostnames", "names no hostnames: it takes every host", "route-scope"))
        for index, parent in enumerate(as_list(route.spec.get("parentRefs"))):
            if not _d(parent).get("sectionName"):
                out.append(
                    route.finding(
                        ["spec", "parentRefs", index, "sectionName"],
                        "no sectionName: the route attaches to every listener of the Gateway",
                        "route-scope",
                    )
                )
        for index, rule in enumerate(as_list(route.spec.get("rules"))):
            out.extend(_rule_scope(route, index, _d(rule)))
    return out


def _backend_weights(rule: dict) -> list[tuple[str, int]] | None:
    """(backend name, weight) of each backend of a rule that splits traffic (two or more
    backends, integer weights; Gateway API's default weight is 1), else None."""
    refs = [ref for ref in as_list(rule.get("backendRefs")) if isinstance(ref, dict)]
    weights = [(str(ref.get("name")), ref.get("weight", 1)) for ref in refs]
    if len(refs) < 2 or not all(isinstance(w, int) and not isinstance(w, bool) for _, w in weights):
        return None
    return weights


def route_weights(resources: list[Resource]) -> list[Finding]:
    """Weights are relative in Gateway API; the repository states them as percentages. A
    GRPCRoute splits gRPC as the HTTPRoute of its name splits REST (the canary weights of
    ``traffic.yaml`` set both), so a route edited by hand cannot send the two elsewhere."""
    out = []
    http = {(r.namespace, r.name): r for r in resources if r.kind == "HTTPRoute"}
    for route in (r for r in resources if r.kind in ROUTE_KINDS):
        for index, rule in enumerate(as_list(route.spec.get("rules"))):
            weights = _backend_weights(_d(rule))
            if weights is None:
                continue
            where = ["spec", "rules", index, "backendRefs"]
            total = sum(weight for _, weight in weights)
            if total != TOTAL_WEIGHT:
                out.append(
                    route.finding(
                        where,
                        f"backend weights {[weight for _, weight in weights]} add up to {total}, not {TOTAL_WEIGHT}",
                        "route-weights",
                    )
                )
            peer = http.get((route.namespace, route.name)) if route.kind == "GRPCRoute" else None
            peer_weights = _http_weights(peer, index) if peer is not None else None
            if peer_weights is not None and sorted(peer_weights) != sorted(weights):
                out.append(
                    route.finding(
                        where,
                        f"backend weights {dict(weights)} differ from HTTPRoute/{route.name}'s {dict(peer_weights)}: "
                        "gRPC and REST would reach the tracks in different shares",
                        "route-weights",
                    )
                )
    return out


def _http_weights(route: Resource, index: int) -> list[tuple[str, int]] | None:
    """The weights of rule ``index`` of an HTTPRoute, if it has that rule and it splits traffic."""
    rules = as_list(route.spec.get("rules"))
    return _backend_weights(_d(rules[index])) if index < len(rules) else None
