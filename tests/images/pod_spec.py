"""Turn one container of a rendered pod template into a container-engine run, as a kubelet would.

A pod has one app container (``PodWorkload.container``) and any number of init containers
(``PodWorkload.init_containers``, run to completion in order before it: ``pod_run.Pod``); each is
planned on its own with ``plan_run(..., container=...)``. Everything the manifest says about the
container is carried over or refused, never dropped: security context (UID/GID, fsGroup,
runAsNonRoot, read-only root, capabilities, no-new-privileges, seccomp), command and args (with
``$(VAR)`` expansion), env and envFrom (with ConfigMaps resolved from the same rendered overlay),
ports, volume mounts (a claim is a host directory; an emptyDir that one container mounts is a
tmpfs of its sizeLimit, one that several containers of the pod mount is one host directory they
all bind, ``shared_empty_dirs``; a ConfigMap is a read-only directory of its keys; an image
volume the engine's read-only image mount) and cpu/memory limits. A field this translation does
not know fails the test with its name (a sidecar's ``restartPolicy`` among them).

The only additions are the test's own: a name and a label to clean up by, port publishing on
loopback, ``extra_env`` (the image test passes the short-training knobs and its substitutions
there, see image_flows) and ``network`` (an init container that must reach the test's loopback
registry runs on the host's network).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

TEST_LABEL = "ml-gitops.test/images"
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")
#: container fields the kubelet acts on that this translation ignores on purpose (they change nothing
#: about what the process can do): scheduling hints and pull policy.
IGNORED_CONTAINER_FIELDS = {"name", "image", "imagePullPolicy", "terminationMessagePolicy", "terminationMessagePath"}
HANDLED_CONTAINER_FIELDS = {
    "command",
    "args",
    "env",
    "envFrom",
    "ports",
    "volumeMounts",
    "securityContext",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "workingDir",
}


class Unsupported(AssertionError):
    """The manifest uses something this runner cannot reproduce faithfully (a test failure)."""


@dataclass
class PodWorkload:
    """A rendered Deployment or Job: its pod template and the overlay documents around it."""

    kind: str
    name: str
    namespace: str
    spec: dict  # the Deployment's or Job's spec (progressDeadlineSeconds, activeDeadlineSeconds, ...)
    documents: list[dict]

    @property
    def pod(self) -> dict:
        """The pod template."""
        return self.spec["template"]

    @property
    def container(self) -> dict:
        """The pod's one app container (the chart and the Job render exactly one; no sidecars)."""
        containers = self.pod["spec"]["containers"]
        if len(containers) != 1:
            raise Unsupported(f"{self.kind}/{self.name}: expected one app container, not {len(containers)}")
        return containers[0]

    @property
    def init_containers(self) -> list[dict]:
        """The pod's init containers, in the order the kubelet runs them (each to completion)."""
        return list(self.pod["spec"].get("initContainers") or [])

    def containers(self) -> list[dict]:
        """Every container of the pod: the init containers in order, then the app container."""
        return [*self.init_containers, self.container]

    def config_map(self, name: str) -> dict[str, str]:
        """The data of a ConfigMap of this overlay, by its rendered (hash-suffixed) name."""
        for doc in self.documents:
            if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == name:
                if doc["metadata"].get("namespace", self.namespace) == self.namespace:
                    return dict(doc.get("data") or {})
        raise Unsupported(f"{self.kind}/{self.name}: ConfigMap {name} is not in the rendered overlay")


def workloads(documents: list[dict], kind: str) -> list[PodWorkload]:
    """Every Deployment or Job of a rendered overlay, with its pod template."""
    found = []
    for doc in documents:
        if doc and doc.get("kind") == kind:
            metadata = doc["metadata"]
            found.append(
                PodWorkload(kind, metadata["name"], metadata.get("namespace", "default"), doc["spec"], documents)
            )
    return found


def repository_of(image: str) -> str:
    """``host[:port]/path:tag`` or ``...@sha256:...`` without the tag or digest."""
    image = image.split("@", 1)[0]
    head, _, last = image.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names expand, ``$$`` is a literal ``$``."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REF.sub(replace, text)


def resolve_env(
    workload: PodWorkload, extra_env: dict[str, str] | None = None, container: dict | None = None
) -> dict[str, str]:
    """A container's environment (the app container's unless named) as the kubelet builds it:
    envFrom first, then env in order; ``extra_env`` last."""
    container = workload.container if container is None else container
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            data = workload.config_map(source["configMapRef"]["name"])
            env.update({source.get("prefix", "") + key: value for key, value in data.items()})
        else:
            raise Unsupported(f"{workload.name}: envFrom {sorted(source)} (only configMapRef is reproduced)")
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = _expand(str(item["value"]), env)
        elif "configMapKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["configMapKeyRef"]
            data = workload.config_map(ref["name"])
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise Unsupported(
                    f"{workload.name}: env {item['name']}: key {ref['key']} not in ConfigMap {ref['name']}"
                )
            env[item["name"]] = data[ref["key"]]
        elif "fieldRef" in item.get("valueFrom", {}):
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            values = {"metadata.name": f"{workload.name}-0", "metadata.namespace": workload.namespace}
            if path not in values:
                raise Unsupported(f"{workload.name}: env {item['name']}: fieldRef {path} is not reproduced")
            env[item["name"]] = values[path]
        else:
            raise Unsupported(f"{workload.name}: env {item['name']}: {item.get('valueFrom')} is not reproduced")
    env.update(extra_env or {})
    return env


def _security(workload: PodWorkload, container: dict | None = None) -> dict:
    """Container securityContext over the pod's (the container's fields win, as in Kubernetes)."""
    pod_level = workload.pod["spec"].get("securityContext", {})
    merged = {k: v for k, v in pod_level.items() if k in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")}
    merged.update((workload.container if container is None else container).get("securityContext", {}))
    return merged


def check_runs_as_non_root(workload: PodWorkload, image_user: str, container: dict | None = None) -> None:
    """runAsNonRoot as the kubelet checks it: the UID used (manifest, else image) must be numeric and not 0."""
    security = _security(workload, container)
    if not security.get("runAsNonRoot"):
        return
    uid = security.get("runAsUser")
    if uid is None:
        user = image_user.split(":", 1)[0]
        if not user.isdigit():
            raise AssertionError(
                f"{workload.name}: runAsNonRoot, no runAsUser, and the image USER {image_user!r} is not numeric"
            )
        uid = int(user)
    assert int(uid) != 0, f"{workload.name}: runAsNonRoot but the container would run as UID 0"


@dataclass
class RunPlan:
    """An engine ``run`` command line and what the test needs to talk to the container."""

    name: str
    args: list[str]
    ports: dict[str, int]  # port name (or number as text) -> container port
    env: dict[str, str]
    termination_grace_seconds: int
    host_dirs: list[Path] = field(default_factory=list)


def _quantity_bytes(text: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(float(text))


def _cpus(text: str) -> str:
    return f"{int(text[:-1]) / 1000:g}" if text.endswith("m") else f"{float(text):g}"


def shared_empty_dirs(workload: PodWorkload) -> dict[str, int | None]:
    """The emptyDir volumes more than one container of the pod mounts (an init container fills one,
    the app container reads it), each with its sizeLimit in bytes (None: no limit). Each must be
    one directory for the whole pod, not a tmpfs per container: ``plan_run(shared_dirs=...)``."""
    volumes = {v["name"]: v for v in workload.pod["spec"].get("volumes", []) if "emptyDir" in v}
    users: dict[str, int] = {}
    for container in workload.containers():
        for name in {m["name"] for m in container.get("volumeMounts", []) if m["name"] in volumes}:
            users[name] = users.get(name, 0) + 1
    return {
        name: _quantity_bytes(str(volumes[name]["emptyDir"]["sizeLimit"]))
        if volumes[name]["emptyDir"].get("sizeLimit")
        else None
        for name, count in users.items()
        if count > 1
    }


def plan_run(
    engine_name: str,
    workload: PodWorkload,
    image: str,
    claims: dict[str, Path],
    scratch: Path,
    extra_env: dict[str, str] | None = None,
    session_label: str = "",
    *,
    container: dict | None = None,
    shared_dirs: dict[str, Path] | None = None,
    network: str | None = None,
) -> RunPlan:
    """The engine command line that runs ``image`` exactly as the workload's pod template declares.

    ``container``: which of the pod's containers (an init container's dict), the app container
    when None. ``shared_dirs``: the host directory of each emptyDir several containers of the pod
    mount (:func:`shared_empty_dirs`); every one of those must be given. ``network``: None for the
    rule below (no port: no network), or ``"host"`` for a container the test points at a server
    on the host's loopback (the model registry an init container pulls from)."""
    spec = workload.pod["spec"]
    container = workload.container if container is None else container
    is_init = container is not workload.container
    unknown = set(container) - HANDLED_CONTAINER_FIELDS - IGNORED_CONTAINER_FIELDS
    if unknown:
        raise Unsupported(f"{workload.name}: container fields {sorted(unknown)} are not reproduced by the image test")
    if is_init and {"livenessProbe", "readinessProbe", "startupProbe", "lifecycle"} & set(container):
        raise Unsupported(f"{workload.name}: init container {container['name']} has probes or hooks (a sidecar?)")
    shared = shared_empty_dirs(workload)
    missing = set(shared) - set(shared_dirs or {})
    if missing:
        raise Unsupported(f"{workload.name}: emptyDir {sorted(missing)} is shared by several containers: give its dir")
    part = f"{workload.name}-{container['name']}" if is_init else workload.name
    name = f"ml-gitops-test-{part}-{uuid.uuid4().hex[:8]}"
    args = ["run", "--detach", "--name", name, "--label", f"{TEST_LABEL}={session_label or 'yes'}"]
    args += ["--hostname", f"{workload.name}-0"]
    env = resolve_env(workload, extra_env, container)

    security = _security(workload, container)
    if security.get("privileged"):
        raise Unsupported(f"{workload.name}: privileged containers are not run")
    if "runAsUser" in security:
        user = str(security["runAsUser"])
        if "runAsGroup" in security:
            user += f":{security['runAsGroup']}"
        args += ["--user", user]
    pod_security = spec.get("securityContext", {})
    for gid in [pod_security.get("fsGroup"), *pod_security.get("supplementalGroups", [])]:
        if gid is not None:
            args += ["--group-add", str(gid)]
    if security.get("readOnlyRootFilesystem"):
        args += ["--read-only"]
        if engine_name == "podman":
            args += ["--read-only-tmpfs=false"]  # podman would add writable /run, /tmp, /var/tmp: Kubernetes does not
    capabilities = security.get("capabilities", {})
    for cap in capabilities.get("drop", []):
        args += ["--cap-drop", "all" if cap == "ALL" else cap]
    for cap in capabilities.get("add", []):
        args += ["--cap-add", cap]
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    seccomp = security.get("seccompProfile", {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":
        raise Unsupported(f"{workload.name}: seccompProfile {seccomp} is not reproduced")
    if engine_name == "docker":
        # Docker lets any user bind ports below 1024; a Kubernetes node without that sysctl does not.
        args += ["--sysctl", "net.ipv4.ip_unprivileged_port_start=1024"]

    limits = container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        args += ["--memory", str(_quantity_bytes(str(limits["memory"])))]
    if "cpu" in limits:
        args += ["--cpus", _cpus(str(limits["cpu"]))]

    ports = {}
    for port in container.get("ports", []):
        if port.get("protocol", "TCP") != "TCP":
            raise Unsupported(f"{workload.name}: port {port} is not TCP")
        ports[port.get("name") or str(port["containerPort"])] = int(port["containerPort"])
        args += ["--publish", f"127.0.0.1::{port['containerPort']}"]
    if network == "host":
        if ports:
            raise Unsupported(f"{workload.name}: {container['name']} declares ports: not run on the host's network")
        args += ["--network", "host"]
    elif network is not None:
        raise ValueError(f"network must be None or 'host', not {network!r}")
    elif ports:
        args += ["--network", "slirp4netns"] if engine_name == "podman" else []
    else:
        args += ["--network", "none"]  # no port: nothing to reach, and the NetworkPolicy allows no egress

    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    host_dirs = []
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"])
        if volume is None:
            raise Unsupported(f"{workload.name}: volumeMount {mount['name']} names no volume")
        target = mount["mountPath"]
        read_only = bool(mount.get("readOnly"))
        if "subPath" in mount or "subPathExpr" in mount:
            raise Unsupported(f"{workload.name}: volumeMount {mount['name']}: subPath is not reproduced")
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            if claim not in claims:
                raise Unsupported(f"{workload.name}: no host directory for claim {claim}")
            read_only = read_only or bool(volume["persistentVolumeClaim"].get("readOnly"))
            args += ["--mount", f"type=bind,source={claims[claim]},destination={target},ro={str(read_only).lower()}"]
        elif "emptyDir" in volume and mount["name"] in shared:
            # One directory for the pod (what the kubelet makes of an emptyDir): what an init
            # container writes there, the app container reads. Its sizeLimit: pod_run.Pod.
            source = (shared_dirs or {})[mount["name"]]
            args += ["--mount", f"type=bind,source={source},destination={target},ro={str(read_only).lower()}"]
        elif "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit")
            options = f"type=tmpfs,destination={target},tmpfs-mode=0777"
            if size:
                options += f",tmpfs-size={_quantity_bytes(str(size))}"
            args += ["--mount", options]
        elif "image" in volume:
            # An image volume: the image's files, read-only (the test pulled the reference, as a
            # kubelet pulls it; podman and Docker 28+ mount an image's root this way).
            args += ["--mount", f"type=image,source={volume['image']['reference']},destination={target}"]
        elif "configMap" in volume:
            directory = scratch / f"configmap-{mount['name']}"
            directory.mkdir(parents=True, exist_ok=True)
            for key, value in workload.config_map(volume["configMap"]["name"]).items():
                (directory / key).write_text(value)
            host_dirs.append(directory)
            args += ["--mount", f"type=bind,source={directory},destination={target},ro=true"]
        else:
            raise Unsupported(f"{workload.name}: volume {mount['name']} of type {sorted(volume)} is not reproduced")

    for key, value in sorted(env.items()):
        args += ["--env", f"{key}={value}"]
    if container.get("workingDir"):
        args += ["--workdir", container["workingDir"]]
    command = [_expand(part, env) for part in container.get("command", [])]
    if command:
        args += ["--entrypoint", json.dumps(command)]
    args += [image, *(_expand(part, env) for part in container.get("args", []))]
    grace = int(spec.get("terminationGracePeriodSeconds", 30))
    return RunPlan(name, args, ports, env, grace, host_dirs)
