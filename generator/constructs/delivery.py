"""Blue-green and canary building blocks, rendered as Kustomize Components.

A component turns the base's single server into two variants of it: slots ``blue`` and
``green`` (blue-green) or tracks ``stable`` and ``canary``. Each variant is the same chart
rendered with ``slot``/``track`` set, so it differs from the base only where it must: its
name, its selector label, its own release ConfigMap (model version) and its own image name.

Variant images use logical names (``inference-server-blue``) that the overlay's ``images:``
maps to a real repository and tag, so each variant's whole release (image and model version)
is pinned in the overlay's kustomization.yaml, where the release commands edit it.

Variants run fixed replicas (no HorizontalPodAutoscaler): the idle slot can be scaled to zero,
and without a Gateway the canary's share of traffic is its share of the replicas.
"""

from __future__ import annotations

from dataclasses import dataclass

import cdk8s
from constructs import Construct

from generator.config import Gateway, Image, Model, Serving, Training
from generator.constructs.chart import CHART_NAME
from generator.constructs.common import labels
from generator.constructs.inference import InferenceService, InferenceServiceProps
from generator.constructs.training import TrainingJob, TrainingJobProps, job_objects
from generator.conventions import (
    CANARY_WEIGHTS_KIND,
    DEFAULT_MODEL_VERSION,
    RELEASE_KEY,
    VARIANT_LABEL,
    VARIANTS,
    canary_weights_name,
    release_config_map_name,
    variant_image_name,
)

CANARY_HEADER = "x-model-track"
#: Index of the HTTPRoute rule that splits traffic by weight.
WEIGHTED_RULE = 1
#: Objects of the base that the variants replace, per model: (apiVersion, kind, name suffix);
#: and the training Job with what it brings (``training.job_objects``).
REPLACED = (
    ("apps/v1", "Deployment", "-server"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "-server"),
    ("policy/v1", "PodDisruptionBudget", "-server"),
    ("v1", "ConfigMap", "-server"),
    ("v1", "ConfigMap", "-release"),
)
#: Only the Service is rendered by a Service-only chart release.
SERVICE_ONLY = {
    "deployment": {"enabled": False},
    "autoscaling": {"enabled": False},
    "podDisruptionBudget": {"enabled": False},
    "networkPolicy": {"enabled": False},
    "serviceAccount": {"create": False},
    "configMap": {"create": False},
}


def variant_image(image: Image, variant: str) -> Image:
    """The logical image name a variant's Deployment uses; overlays map it to a real image."""
    return Image(variant_image_name(image.repository, variant), image.tag, image.digest)


@dataclass(frozen=True)
class DeliveryProps:
    """What a blue-green or canary component needs for one model."""

    strategy: str
    model: Model
    server_image: Image
    trainer_image: Image
    serving: Serving
    training: Training
    part_of: str
    gateway: Gateway


class ProgressiveDelivery(Construct):
    """Two variants of one model's server and training Job, with the Services that route to them."""

    def __init__(self, scope: Construct, id: str, props: DeliveryProps):
        super().__init__(scope, id)
        first, second = VARIANTS[props.strategy]
        label = VARIANT_LABEL[props.strategy]
        server = f"{props.model.name}-server"
        self.service_port = 0
        for variant in (first, second):
            InferenceService(
                self,
                variant,
                InferenceServiceProps(
                    model=props.model,
                    image=variant_image(props.server_image, variant),
                    serving=props.serving,
                    part_of=props.part_of,
                    model_store_claim=props.training.storage.claim_name,
                    slot=variant if label == "slot" else "",
                    track=variant if label == "track" else "",
                    overrides={
                        "service": {"enabled": False},
                        "serviceAccount": {"create": False, "name": server},
                        "networkPolicy": {"enabled": False},
                        "autoscaling": {"enabled": False},
                        # The first variant starts with the serving capacity, the second idle.
                        "replicaCount": props.serving.min_replicas if variant == first else 0,
                    },
                ),
            )
            TrainingJob(
                self,
                f"train-{variant}",
                TrainingJobProps(
                    model=props.model,
                    image=props.trainer_image,
                    training=props.training,
                    part_of=props.part_of,
                    variant=variant,
                ),
            )
        # Per-variant Services: the preview (idle slot) for blue-green, one per track for canary.
        routed = (second,) if props.strategy == "blue-green" else (first, second)
        for variant in routed:
            name = f"{server}-preview" if props.strategy == "blue-green" else f"{server}-{variant}"
            release = InferenceService(
                self,
                f"service-{variant}",
                InferenceServiceProps(
                    model=props.model,
                    image=props.server_image,
                    serving=props.serving,
                    part_of=props.part_of,
                    model_store_claim=props.training.storage.claim_name,
                    overrides={"fullnameOverride": name, **SERVICE_ONLY},
                ),
            )
            for obj in release.helm.api_objects:
                obj.add_json_patch(cdk8s.JsonPatch.add(f"/spec/selector/{label}", variant))
                self.service_port = obj.to_json()["spec"]["ports"][0]["port"]
        if props.strategy == "canary":
            self._http_route(props, server)

    def _http_route(self, props: DeliveryProps, server: str) -> None:
        port = self.service_port
        route = cdk8s.ApiObject(
            self,
            "route",
            api_version="gateway.networking.k8s.io/v1",
            kind="HTTPRoute",
            metadata=cdk8s.ApiObjectMetadata(
                name=server,
                labels=labels(name=CHART_NAME, instance=props.model.name, component="server", part_of=props.part_of),
            ),
        )
        parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": props.gateway.name}
        if props.gateway.namespace:
            parent["namespace"] = props.gateway.namespace
        route.add_json_patch(
            cdk8s.JsonPatch.add(
                "/spec",
                {
                    "parentRefs": [parent],
                    "rules": [
                        # A/B: a request that asks for the canary gets it, whatever the weights.
                        {
                            "matches": [{"headers": [{"type": "Exact", "name": CANARY_HEADER, "value": "canary"}]}],
                            "backendRefs": [{"name": f"{server}-canary", "port": port}],
                        },
                        # Everyone else (rule WEIGHTED_RULE): split by the weights of the overlay's
                        # traffic.yaml, which the component's replacements copy in.
                        {
                            "backendRefs": [
                                {"name": f"{server}-stable", "port": port, "weight": 100},
                                {"name": f"{server}-canary", "port": port, "weight": 0},
                            ]
                        },
                    ],
                },
            )
        )


def component_kustomization(
    strategy: str, models: tuple[Model, ...], part_of: str, files: list[str], training: Training
) -> dict:
    """The Component's kustomization: its resources, variant release ConfigMaps, and the
    patches that remove what the variants replace and point the main Service at the first variant."""
    first, _ = VARIANTS[strategy]
    label = VARIANT_LABEL[strategy]
    patches = []
    for model in models:
        replaced = [(api_version, kind, model.name + suffix) for api_version, kind, suffix in REPLACED]
        replaced[4:4] = job_objects(model, training)  # after the server's objects, as before
        for api_version, kind, name in replaced:
            patches.append(
                {"patch": f"$patch: delete\napiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: {name}\n"}
            )
        if strategy == "blue-green":
            patches.append(
                {
                    "patch": f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {model.name}-server\n"
                    f"spec:\n  selector:\n    {label}: {first}\n"
                }
            )
    return {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": files,
        "configMapGenerator": [
            {
                "name": release_config_map_name(model.name, variant),
                "literals": [f"{RELEASE_KEY}={DEFAULT_MODEL_VERSION}"],
                "options": {
                    "labels": {"app.kubernetes.io/instance": model.name, "app.kubernetes.io/part-of": part_of},
                    "annotations": {"argocd.argoproj.io/sync-wave": "-2"},
                },
            }
            for model in models
            for variant in VARIANTS[strategy]
        ],
        "patches": patches,
        **({"replacements": canary_weight_replacements(models)} if strategy == "canary" else {}),
    }


def canary_weight_replacements(models: tuple[Model, ...]) -> list[dict]:
    """Kustomize replacements that copy each track's weight from the overlay's CanaryWeights
    (``traffic.yaml``, weights only) into the HTTPRoute's weighted rule: the route itself is
    written once, here, and a generator change to it is never overwritten by an overlay."""
    return [
        {
            "source": {
                "kind": CANARY_WEIGHTS_KIND,
                "name": canary_weights_name(model.name),
                "fieldPath": f"spec.{track}",
            },
            "targets": [
                {
                    "select": {"kind": "HTTPRoute", "name": f"{model.name}-server"},
                    "fieldPaths": [f"spec.rules.{WEIGHTED_RULE}.backendRefs.[name={model.name}-server-{track}].weight"],
                }
            ],
        }
        for model in models
        for track in VARIANTS["canary"]
    ]
