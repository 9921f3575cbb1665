"""Names, labels and the restricted pod security (the chart's defaults) shared by the constructs."""

from __future__ import annotations

import re
from typing import Any

from cdk8s_plus_33 import k8s

from generator.config import ClusterDNS, ModelArtifacts
from generator.synthesis import chart

MANAGED_BY = "cdk8s"
MODEL_MOUNT = "/models"
# Argo CD must never delete or prune the model store: it holds every trained version.
ARGOCD_KEEP = {"argocd.argoproj.io/sync-options": "Delete=false,Prune=false"}


def dns_egress(dns: ClusterDNS) -> dict[str, Any]:
    """The NetworkPolicy egress rule to the cluster DNS (UDP and TCP 53), as the API spells it."""
    return {
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": dns.namespace}},
                "podSelector": {"matchLabels": dict(dns.pod_labels)},
            }
        ],
    }


def registry_egress(dns: ClusterDNS, artifacts: ModelArtifacts) -> list[dict[str, Any]]:
    """What a pod that pulls or pushes model images must reach: the cluster DNS, and the registry's
    port on any address (a NetworkPolicy cannot name a host, and a registry's addresses move)."""
    return [dns_egress(dns), {"ports": [{"port": artifacts.registry_port, "protocol": "TCP"}]}]


def labels(*, name: str, instance: str, component: str, part_of: str) -> dict[str, str]:
    """The recommended ``app.kubernetes.io/*`` labels. ``version`` is left out on purpose: overlays
    pin images with Kustomize ``images:``, which cannot update it, so it would name the wrong tag."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": part_of,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def snake_case(field: str) -> str:
    """A Kubernetes field name (``runAsUser``) as a cdk8s keyword argument (``run_as_user``)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", field).lower()


def _snake(fields: dict[str, Any]) -> dict[str, Any]:
    return {snake_case(key): value for key, value in fields.items()}


def container_security_context() -> k8s.SecurityContext:
    """The chart's default container security context (restricted, read-only root filesystem)."""
    fields = _snake(chart.container_security_context())
    fields["capabilities"] = k8s.Capabilities(**fields["capabilities"])
    return k8s.SecurityContext(**fields)


def trainer_uid() -> int:
    """The user the trainer runs as: the chart's (both images are built with the same user; a test
    keeps the Dockerfiles' USER equal to the chart's runAsUser)."""
    return int(chart.pod_security_context()["runAsUser"])


def pod_security_context(uid: int) -> k8s.PodSecurityContext:
    """The chart's default pod security context, running as ``uid`` (user, group and fsGroup)."""
    fields = _snake({**chart.pod_security_context(), "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid})
    fields["seccomp_profile"] = k8s.SeccompProfile(**fields["seccomp_profile"])
    return k8s.PodSecurityContext(**fields)


def restricted_container(*, name: str, image: str, resources: dict, **fields: Any) -> k8s.Container:
    """A container meeting Pod Security "restricted", with a read-only root filesystem."""
    return k8s.Container(
        name=name,
        image=image,
        image_pull_policy="IfNotPresent",
        resources=k8s.ResourceRequirements(
            requests={k: k8s.Quantity.from_string(v) for k, v in resources["requests"].items()},
            limits={k: k8s.Quantity.from_string(v) for k, v in resources["limits"].items()},
        ),
        security_context=container_security_context(),
        **fields,
    )


def restricted_pod(*, containers: list[k8s.Container], uid: int, service_account: str, **fields: Any) -> k8s.PodSpec:
    """A pod spec meeting Pod Security "restricted", with no service-account token mounted."""
    return k8s.PodSpec(
        containers=containers,
        service_account_name=service_account,
        automount_service_account_token=False,
        enable_service_links=False,
        security_context=pod_security_context(uid),
        **fields,
    )
