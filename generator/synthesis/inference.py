"""InferenceService: the model server of one model, rendered from charts/inference-service.

The chart is the single definition of the serving workload; this construct only maps
platform.yaml onto the chart's values and renders it through cdk8s's Helm construct
(``helm template`` underneath), so a Helm user and the generator get the same manifests.

The generated layout renders the chart in parts that add up (``shared_objects`` in the base,
``server_workload`` in each strategy's component): the Service, ServiceAccount and NetworkPolicy
every strategy shares, and the workload (Deployment, PodDisruptionBudget, server ConfigMap, and
the HorizontalPodAutoscaler where the rolling server autoscales) once or once per variant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cdk8s
from constructs import Construct

from generator.config import ClusterDNS, Image, Model, ModelArtifacts, Serving
from generator.conventions import UNPINNED_DIGEST, model_image_name, release_config_map_name
from generator.synthesis.chart import CHART_DIR
from generator.synthesis.common import MANAGED_BY, MODEL_MOUNT, registry_egress
from generator.tools import helm_path


@dataclass(frozen=True)
class InferenceServiceProps:
    """What an InferenceService needs. ``slot``/``track`` select a blue/green or stable/canary copy."""

    model: Model
    image: Image
    serving: Serving
    part_of: str
    model_store_claim: str
    slot: str = ""
    track: str = ""
    #: NetworkPolicyPeers admitted to the serving ports (the Gateway's proxy pods, client
    #: namespaces) and to the metrics port alone (Prometheus's pods): nothing else, egress neither.
    serving_peers: tuple[dict[str, Any], ...] = ()
    metrics_peers: tuple[dict[str, Any], ...] = ()
    #: Extra chart values merged last (e.g. switching off shared resources for a second slot).
    overrides: dict[str, Any] = field(default_factory=dict)
    #: Serve the pinned model image (its logical name, which an overlay's ``images:`` pins by
    #: digest) instead of the model store claim; None: from the claim (where an environment trains).
    artifacts: ModelArtifacts | None = None
    #: Where the cluster DNS runs: a pod that pulls its model (initContainer) must resolve the registry.
    cluster_dns: ClusterDNS = ClusterDNS()


#: The chart values that leave only what every strategy shares: Service, ServiceAccount, NetworkPolicy.
SHARED_OBJECTS: dict[str, Any] = {
    "deployment": {"enabled": False},
    "autoscaling": {"enabled": False},
    "podDisruptionBudget": {"enabled": False},
    "configMap": {"create": False},
}


def server_workload(model: Model) -> dict[str, Any]:
    """The chart values that leave only a server's workload (the base has the shared objects):
    its Deployment runs as the base's ServiceAccount, behind the base's Service and NetworkPolicy."""
    return {
        "service": {"enabled": False},
        "serviceAccount": {"create": False, "name": f"{model.name}-server"},
        "networkPolicy": {"enabled": False},
    }


def chart_values(props: InferenceServiceProps) -> dict[str, Any]:
    """The chart values for ``props``: everything platform.yaml decides about serving."""
    serving = props.serving
    suffix = props.slot or props.track
    values: dict[str, Any] = {
        "fullnameOverride": f"{props.model.name}-server",
        "partOf": props.part_of,
        "managedBy": MANAGED_BY,
        # Overlays pin the image with Kustomize `images:`, which cannot update a version label:
        # a label naming the base's tag would lie, and changing it would restart every environment.
        "versionLabel": False,
        "slot": props.slot,
        "track": props.track,
        "image": {"repository": props.image.repository, "tag": props.image.tag, "digest": props.image.digest},
        "model": {
            "name": props.model.name,
            "backend": props.model.backend,
            "basePath": MODEL_MOUNT,
            "versionConfigMap": release_config_map_name(props.model.name, suffix),
            "storage": {"claimName": props.model_store_claim},
            # The server checks its model against these at load and names the classes (metadata).
            "inputShape": list(props.model.input_shape),
            "classes": list(props.model.classes),
        },
        "server": {
            "port": serving.port,
            "grpcPort": serving.grpc_port,
            "metricsPort": serving.metrics_port,
            "workers": serving.workers,
            "threads": serving.threads,
            "grpc": {
                "maxConcurrentRpcs": serving.grpc.max_concurrent_rpcs,
                "maxConnectionAgeSeconds": serving.grpc.max_connection_age_seconds,
                "reflection": serving.grpc.reflection,
            },
        },
        # The Services clients and routes use carry no metrics port; the monitoring component's
        # metrics Service (metrics_service_values) is the one Prometheus scrapes.
        "service": {"metricsPort": 0},
        "resources": serving.resources.as_k8s(),
        "autoscaling": {
            "enabled": True,
            "minReplicas": serving.min_replicas,
            "maxReplicas": serving.max_replicas,
            "targetCPUUtilizationPercentage": serving.target_cpu_percent,
        },
        "podDisruptionBudget": {"enabled": True, **serving.pdb.as_values()},
        "networkPolicy": {
            "enabled": True,
            # The server reads a mounted volume and calls nothing (a pulling init container's
            # registry egress is added by artifact_values).
            "denyEgress": True,
            "sameNamespace": False,
            "ingressFrom": list(props.serving_peers),
            "metricsFrom": list(props.metrics_peers),
        },
    }
    if props.artifacts is not None:
        values = _merge(values, artifact_values(props, suffix))
    return _merge(values, props.overrides)


def network_peer(namespace: str, pod_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A NetworkPolicyPeer: the pods with ``pod_labels`` in ``namespace`` (in the policy's own
    namespace when it is empty), or every pod of ``namespace`` without labels."""
    peer: dict[str, Any] = {}
    if namespace:
        peer["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    if pod_labels:
        peer["podSelector"] = {"matchLabels": dict(pod_labels)}
    return peer


def artifact_values(props: InferenceServiceProps, variant: str) -> dict[str, Any]:
    """The chart values that serve the model image an overlay pins: its name with a digest no image
    has (the overlay's ``images:`` entry sets the real one), delivered as platform.yaml says, and what that delivery
    needs: registry credentials, and for an init container the egress to DNS and the registry."""
    artifacts = props.artifacts
    assert artifacts is not None
    image = f"{model_image_name(props.model.name, variant)}@{UNPINNED_DIGEST}"
    values: dict[str, Any] = {
        "model": {"artifact": {"image": image, "delivery": artifacts.delivery, "pullSecret": ""}},
    }
    if artifacts.delivery == "imageVolume":
        if artifacts.pull_secret:  # the kubelet pulls an image volume with the pod's pull secrets
            values["imagePullSecrets"] = [{"name": artifacts.pull_secret}]
        return values
    values["model"]["artifact"]["pullSecret"] = artifacts.pull_secret
    values["networkPolicy"] = {"egressTo": registry_egress(props.cluster_dns, artifacts)}
    return values


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


class InferenceService(Construct):
    """The chart's Deployment, Service, ServiceAccount, HPA, PDB, NetworkPolicy and ConfigMap."""

    def __init__(self, scope: Construct, id: str, props: InferenceServiceProps):
        super().__init__(scope, id)
        self.helm = cdk8s.Helm(
            self,
            "chart",
            chart=str(CHART_DIR),
            release_name=props.model.name,
            values=chart_values(props),
            helm_executable=helm_path(),
            helm_flags=["--skip-tests"],
        )
