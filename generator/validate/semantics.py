"""What the JSON schemas cannot say: names and label values, a Deployment selector that does
not match its own template, duplicate env var / container / port names."""

from __future__ import annotations

from typing import Any

from generator.validate.kube import (
    DNS1035_KINDS,
    DNS1035_LABEL,
    DNS1123_LABEL,
    DNS1123_LABEL_KINDS,
    DNS1123_SUBDOMAIN,
    LABEL_VALUE,
    PodTemplate,
    as_list,
    pod_template,
    selector_matches,
)
from generator.validate.model import Finding, Resource
from services.contract import LABEL_KEY, matches

CHECKS = {
    "invalid-name": "metadata.name is a valid DNS name for its kind",
    "invalid-label": "label keys and values are valid",
    "selector-mismatch": "a workload's selector matches its own pod template labels",
    "duplicate-env": "no env var name repeats in a container",
    "duplicate-name": "container names and container port names are unique in a pod",
    "selector-mutable-label": "a workload selector uses no label that changes between releases (version)",
}

# Labels whose value changes with every release: a selector on them breaks the next rollout
# (Deployment selectors are immutable) or orphans the running pods.
MUTABLE_LABELS = ("app.kubernetes.io/version", "helm.sh/chart", "version", "pod-template-hash")


def _label_key_ok(key: str) -> bool:
    """A label key Kubernetes accepts: ``services.contract.LABEL_KEY``, with a prefix of at most 253."""
    return len(key.rpartition("/")[0]) <= 253 and matches(LABEL_KEY, key)


def _labels(resource: Resource, labels: Any, path: list, out: list[Finding]) -> None:
    if not isinstance(labels, dict):
        return
    for key, value in labels.items():
        if not isinstance(key, str) or not _label_key_ok(key):
            out.append(resource.finding(path + [key], f"invalid label key {key!r}", "invalid-label"))
        if isinstance(value, str) and (len(value) > 63 or not LABEL_VALUE.fullmatch(value)):
            out.append(
                resource.finding(
                    path + [key],
                    f"invalid label value {value!r} (≤63 characters: alphanumerics, '-', '_', '.')",
                    "invalid-label",
                )
            )


def check(resource: Resource) -> list[Finding]:
    """What the schemas cannot say about one object: its name, its labels, and for a workload
    its selector and the names its containers, env vars and ports must not repeat."""
    out: list[Finding] = []
    _name(resource, out)
    _labels(resource, resource.metadata.get("labels"), ["metadata", "labels"], out)
    pod = pod_template(resource)
    if pod is None:
        return out
    _labels(resource, pod.labels, pod.prefix[:-1] + ["metadata", "labels"], out)
    if resource.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}:
        _selector(resource, pod, out)
    _duplicates(resource, pod, out)
    return out


def _name(resource: Resource, out: list[Finding]) -> None:
    """metadata.name is set (or generated) and is the kind of DNS name the API server takes for this kind."""
    name = resource.metadata.get("name")
    if name is None and not resource.metadata.get("generateName"):
        out.append(resource.finding("metadata.name", "metadata.name is missing", "invalid-name"))
    if isinstance(name, str):
        if resource.kind in DNS1035_KINDS:
            ok, rule = len(name) <= 63 and bool(DNS1035_LABEL.fullmatch(name)), "an RFC 1035 label"
        elif resource.kind in DNS1123_LABEL_KINDS:
            ok, rule = len(name) <= 63 and bool(DNS1123_LABEL.fullmatch(name)), "an RFC 1123 label"
        else:
            ok, rule = len(name) <= 253 and bool(DNS1123_SUBDOMAIN.fullmatch(name)), "an RFC 1123 subdomain"
        if not ok:
            out.append(resource.finding("metadata.name", f"{name!r} is not {rule}", "invalid-name"))


def _selector(resource: Resource, pod: PodTemplate, out: list[Finding]) -> None:
    """A workload's selector matches its own pods (else the API server refuses it) and uses no
    label that changes between releases (selectors are immutable)."""
    selector = resource.spec.get("selector")
    if isinstance(selector, dict) and not selector_matches(selector, pod.labels):
        out.append(
            resource.finding(
                "spec.selector",
                f"selector does not match the pod template labels {dict(sorted(pod.labels.items()))}",
                "selector-mismatch",
            )
        )
    elif isinstance(selector, dict) and not selector:
        out.append(resource.finding("spec.selector", "empty selector", "selector-mismatch"))
    match_labels = selector.get("matchLabels") if isinstance(selector, dict) else None
    for key in match_labels if isinstance(match_labels, dict) else {}:
        if key in MUTABLE_LABELS:
            out.append(
                resource.finding(
                    ["spec", "selector", "matchLabels", key],
                    f"selector uses {key!r}, which changes between releases; selectors are immutable",
                    "selector-mutable-label",
                )
            )


def _duplicates(resource: Resource, pod: PodTemplate, out: list[Finding]) -> None:
    """Container names and port names are unique in the pod, env var names in each container
    (a repeated env var silently loses all but its last value)."""
    names: dict[str, list] = {}
    port_names: dict[str, list] = {}
    for path, container in pod.containers():
        cname = container.get("name")
        if isinstance(cname, str):
            if cname in names:
                out.append(
                    resource.finding(
                        path + ["name"],
                        f"container name {cname!r} repeats (first at {'.'.join(map(str, names[cname]))})",
                        "duplicate-name",
                    )
                )
            names.setdefault(cname, path)
        seen_env: dict[str, int] = {}
        for index, env in enumerate(as_list(container.get("env"))):
            env_name = env.get("name") if isinstance(env, dict) else None
            if isinstance(env_name, str):
                if env_name in seen_env:
                    out.append(
                        resource.finding(
                            path + ["env", index, "name"],
                            f"env var {env_name!r} repeats (first at env[{seen_env[env_name]}]); "
                            "only the last one takes effect",
                            "duplicate-env",
                        )
                    )
                seen_env.setdefault(env_name, index)
        for index, port in enumerate(as_list(container.get("ports"))):
            pname = port.get("name") if isinstance(port, dict) else None
            if isinstance(pname, str):
                if pname in port_names:
                    out.append(
                        resource.finding(
                            path + ["ports", index, "name"], f"port name {pname!r} repeats in the pod", "duplicate-name"
                        )
                    )
                port_names.setdefault(pname, path)
