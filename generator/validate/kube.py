"""Small Kubernetes helpers shared by the semantic, policy and cross-reference checks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from generator.validate.model import Resource
from services import contract

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

# Kinds the API server keeps at cluster scope (the ones a GitOps repo may plausibly carry).
CLUSTER_SCOPED = {
    "APIService",
    "CertificateSigningRequest",
    "ClusterIssuer",
    "ClusterRole",
    "ClusterRoleBinding",
    "ComponentStatus",
    "CSIDriver",
    "CSINode",
    "CustomResourceDefinition",
    "FlowSchema",
    "GatewayClass",
    "IngressClass",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    "VolumeAttributesClass",
    "DeviceClass",
    "ClusterTrustBundle",
    "IPAddress",
    "ServiceCIDR",
}

# The name rules (services/contract.py), matched whole with fullmatch.
DNS1123_SUBDOMAIN = re.compile(contract.DNS_SUBDOMAIN)
DNS1123_LABEL = re.compile(contract.DNS_LABEL)
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(contract.LABEL_VALUE)
# Kinds whose metadata.name must be a DNS-1035 label (Service) or a DNS-1123 label; the rest
# take a DNS-1123 subdomain.
DNS1035_KINDS = {"Service"}
DNS1123_LABEL_KINDS = {"Namespace"}


@dataclass
class PodTemplate:
    resource: Resource
    prefix: list  # path to the pod spec, e.g. ["spec", "template", "spec"]
    spec: dict
    labels: dict
    namespace: str

    def containers(self) -> Iterator[tuple[list, dict]]:
        """Yield (path, container) for init, regular and ephemeral containers."""
        for list_name in CONTAINER_LISTS:
            items = self.spec.get(list_name)
            if isinstance(items, list):
                for index, container in enumerate(items):
                    if isinstance(container, dict):
                        yield self.prefix + [list_name, index], container


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    """A list field, or [] when absent or malformed (the schema check reports malformed)."""
    return value if isinstance(value, list) else []


def hashable(value: object) -> bool:
    return isinstance(value, (str, int, float, bool, type(None)))


def key_of(value: Any) -> Any:
    """A document value usable as a lookup key: itself if scalar, else a string that matches nothing."""
    return value if hashable(value) else f"<invalid {type(value).__name__}>"


def pod_template(resource: Resource) -> PodTemplate | None:
    kind = resource.kind
    if kind not in WORKLOAD_KINDS:
        return None
    if kind == "Pod":
        return PodTemplate(
            resource, ["spec"], resource.spec, _dict(resource.metadata.get("labels")), resource.namespace
        )
    if kind == "CronJob":
        job_spec = _dict(_dict(resource.spec.get("jobTemplate")).get("spec"))
        template = _dict(job_spec.get("template"))
        prefix = ["spec", "jobTemplate", "spec", "template", "spec"]
    else:
        template = _dict(resource.spec.get("template"))
        prefix = ["spec", "template", "spec"]
    spec = template.get("spec")
    if not isinstance(spec, dict):
        return None
    labels = _dict(_dict(template.get("metadata")).get("labels"))
    return PodTemplate(resource, prefix, spec, labels, resource.namespace)


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against a label set; {} matches all."""
    selector = _dict(selector)
    for key, value in _dict(selector.get("matchLabels")).items():
        if not hashable(key) or labels.get(key) != value:
            return False
    for expr in as_list(selector.get("matchExpressions")):
        if not isinstance(expr, dict):
            return False
        key, op, values = expr.get("key"), expr.get("operator"), as_list(expr.get("values"))
        if not hashable(key):
            return False
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def map_selector_matches(selector: dict | None, labels: dict) -> bool:
    """A Service-style selector (plain map); an empty map matches nothing useful here."""
    selector = _dict(selector)
    return bool(selector) and all(hashable(k) and labels.get(k) == v for k, v in selector.items())


def parse_image(image: str) -> tuple[str, str | None, str | None]:
    """Split an image reference into (repository, tag, digest)."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image, tag = image.rsplit(":", 1)
    return image, tag, digest
