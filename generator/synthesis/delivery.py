"""The server components, one per strategy, rendered as Kustomize Components that add to the base.

The base holds what every strategy shares (the Service, ServiceAccount and NetworkPolicy of each
model's server); a strategy's component adds the workload: ``rolling`` the single autoscaled
server, ``blue-green`` slots ``blue`` and ``green``, ``canary`` tracks ``stable`` and ``canary``.
Each variant is the same chart rendered with ``slot``/``track`` set, so it differs from the
rolling server only where it must: its name, its selector label, its own release ConfigMap
(model version) and its own image names. An overlay is the sum of the base, its strategy's
component, its strategy's training component where it trains, and monitoring.

Servers get their model from the model image their overlay pins by digest (platform.yaml
``modelArtifacts``); where an environment trains, its training component adds the model store
claim and points the servers back at it (``serve_from_claim``): that is the one replacement.

Variant images use logical names (``inference-server-blue``, ``mnist-model-blue``) that the
overlay's ``images:`` maps to a real repository and tag or digest, so each variant's whole release
is pinned in the overlay, where the release commands edit it.

Variants run fixed replicas (no HorizontalPodAutoscaler): the idle slot can be scaled to zero,
and without a Gateway the canary's share of traffic is its share of the replicas.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import cdk8s
import yaml
from constructs import Construct

from generator.config import Gateway, Image, Model
from generator.conventions import (
    CANARY_WEIGHTS_KIND,
    DEFAULT_MODEL_VERSION,
    RELEASE_KEY,
    canary_weights_name,
    release_config_map_name,
    variant_image_name,
)
from generator.strategy import Strategy
from generator.synthesis.chart import chart_name
from generator.synthesis.common import labels
from generator.synthesis.inference import InferenceService, InferenceServiceProps, server_workload
from services.contract import PREDICT_METHOD, PREDICTION_SERVICE

#: The header each weighted backend of the canary route sets on what it forwards: the track the
#: Gateway chose (never a client's choice: no rule matches it).
CANARY_HEADER = "x-model-track"
#: Index of the rule that splits traffic by weight in each canary route (the route's one rule).
WEIGHTED_RULE = 0
#: The canary routes, by kind: each has one weighted rule, and the same weights (traffic.yaml).
CANARY_ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")
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
    """What one strategy's server component needs for one model."""

    strategy: Strategy
    #: The model's server as platform.yaml defines it (``server.artifacts`` None: it reads the
    #: model store claim, where an environment trains); each part of the component is a copy.
    server: InferenceServiceProps
    gateway: Gateway

    def chart_props(
        self, image: Image, overrides: dict[str, Any], slot: str = "", track: str = ""
    ) -> InferenceServiceProps:
        """The chart render of one part of this component: the server, with its own image and values."""
        return replace(self.server, image=image, overrides=overrides, slot=slot, track=track)

    def from_claim(self) -> DeliveryProps:
        """The same component with servers that read the model store claim instead of a model image."""
        return replace(self, server=replace(self.server, artifacts=None))


class ServerComponent(Construct):
    """One model's server workload under ``strategy``: the rolling server, or two variants of
    it with the Services that route to them (and, for canary, the weighted HTTPRoute and GRPCRoute)."""

    def __init__(self, scope: Construct, id: str, props: DeliveryProps):
        super().__init__(scope, id)
        server = f"{props.server.model.name}-server"
        self.service_port = 0
        self.grpc_port = 0
        strategy = props.strategy
        if not strategy.progressive:
            InferenceService(
                self,
                "server",
                props.chart_props(props.server.image, server_workload(props.server.model)),
            )
            return
        first, _ = strategy.variants
        label = strategy.variant_label
        for variant in strategy.variants:
            InferenceService(
                self,
                variant,
                props.chart_props(
                    variant_image(props.server.image, variant),
                    {
                        **server_workload(props.server.model),
                        "autoscaling": {"enabled": False},
                        # The first variant starts with the serving capacity, the second idle.
                        "replicaCount": props.server.serving.min_replicas if variant == first else 0,
                    },
                    slot=variant if label == "slot" else "",
                    track=variant if label == "track" else "",
                ),
            )
        # Per-variant Services: the preview (idle slot) for blue-green, one per track for canary.
        for variant, name in strategy.variant_services(server).items():
            release = InferenceService(
                self,
                f"service-{variant}",
                props.chart_props(props.server.image, {"fullnameOverride": name, **SERVICE_ONLY}),
            )
            for obj in release.helm.api_objects:
                obj.add_json_patch(cdk8s.JsonPatch.add(f"/spec/selector/{label}", variant))
                ports = {port["name"]: port["port"] for port in obj.to_json()["spec"]["ports"]}
                self.service_port, self.grpc_port = ports["http"], ports["grpc"]
        if strategy.routes_by_weight:
            self._route(props, server, "HTTPRoute", canary_route_spec(props, server, self.service_port))
            self._route(props, server, "GRPCRoute", canary_grpc_route_spec(props, server, self.grpc_port))

    def _route(self, props: DeliveryProps, server: str, kind: str, spec: dict) -> None:
        route = cdk8s.ApiObject(
            self,
            "route" if kind == "HTTPRoute" else "grpc-route",
            api_version="gateway.networking.k8s.io/v1",
            kind=kind,
            metadata=cdk8s.ApiObjectMetadata(
                name=server,
                labels=labels(
                    name=chart_name(),
                    instance=props.server.model.name,
                    component="server",
                    part_of=props.server.part_of,
                ),
            ),
        )
        route.add_json_patch(cdk8s.JsonPatch.add("/spec", spec))


def predict_matches(model: str) -> list[dict]:
    """HTTPRoute matches of a model's TF Serving predict routes and nothing else: status, metadata
    (file paths, digests), health and /metrics stay inside the cluster. ``RegularExpression`` is
    implementation-specific in Gateway API; this one (a DNS label and digits) reads the same in
    RE2, Envoy's and NGINX's syntax."""
    return [
        {"path": {"type": "Exact", "value": f"/v1/models/{model}:predict"}},
        {"path": {"type": "RegularExpression", "value": f"/v1/models/{model}/versions/[0-9]+:predict"}},
    ]


def gateway_attachment(gateway: Gateway) -> dict:
    """The ``parentRefs`` and ``hostnames`` of a canary route: the Gateway listener platform.yaml
    names, for its host names alone (without them a route takes every listener and every host)."""
    parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway.name}
    if gateway.namespace:
        parent["namespace"] = gateway.namespace
    parent["sectionName"] = gateway.section_name
    return {"parentRefs": [parent], "hostnames": list(gateway.hostnames)}


def weighted_backends(props: DeliveryProps, server: str, port: int) -> list[dict]:
    """The backends of a canary route's weighted rule: each track's Service on ``port``, the stable
    one at 100 (the component's replacements copy the overlay's weights in), each setting
    ``CANARY_HEADER`` to its track on what it forwards (replacing what a client sent)."""
    stable, _ = props.strategy.variants
    return [
        {
            "name": service,
            "port": port,
            "weight": 100 if track == stable else 0,
            "filters": [
                {
                    "type": "RequestHeaderModifier",
                    "requestHeaderModifier": {"set": [{"name": CANARY_HEADER, "value": track}]},
                }
            ],
        }
        for track, service in props.strategy.variant_services(server).items()
    ]


def canary_route_spec(props: DeliveryProps, server: str, port: int) -> dict:
    """The canary HTTPRoute's spec: attached as ``gateway_attachment`` says, with one rule
    (``WEIGHTED_RULE``) that sends the predict routes to the tracks by the weights of the
    overlay's ``traffic.yaml``. No rule matches a client's header, so nobody outside picks the
    canary."""
    return {
        **gateway_attachment(props.gateway),
        "rules": [
            {
                "matches": predict_matches(props.server.model.name),
                "backendRefs": weighted_backends(props, server, port),
            }
        ],
    }


def canary_grpc_route_spec(props: DeliveryProps, server: str, grpc_port: int) -> dict:
    """The canary GRPCRoute's spec: the HTTPRoute's attachment and weights, for gRPC clients, with
    one rule (``WEIGHTED_RULE``) that matches TF Serving's ``PredictionService/Predict`` alone:
    metadata, model status, health and reflection stay inside the cluster."""
    method = {"type": "Exact", "service": PREDICTION_SERVICE, "method": PREDICT_METHOD}
    return {
        **gateway_attachment(props.gateway),
        "rules": [
            {
                "matches": [{"method": method}],
                "backendRefs": weighted_backends(props, server, grpc_port),
            }
        ],
    }


def model_image_fields() -> dict:
    """Kustomize image field specs that let an overlay's ``images:`` pin the model image of a
    server by digest: the image volume's reference, or the fetch-model init container's
    ``MODEL_IMAGE`` value (only values naming a pinned image change)."""
    return {
        "images": [
            {"path": "spec/template/spec/volumes[]/image/reference", "kind": "Deployment"},
            {"path": "spec/template/spec/initContainers[]/env[]/value", "kind": "Deployment"},
        ]
    }


def serve_from_claim(deployments: list[dict]) -> dict[str, tuple[dict, list[dict]]]:
    """The training component's patches that turn each server Deployment of a strategy back to
    the model store claim, which the environment's training Job fills: the pod spec as the chart
    renders it without a model image replaces the one that pulls it. Keyed by file name:
    (the patch's target, its JSON patch operations)."""
    return {
        f"{deployment['metadata']['name']}-from-claim.yaml": (
            {"kind": "Deployment", "name": deployment["metadata"]["name"]},
            [{"op": "replace", "path": "/spec/template/spec", "value": deployment["spec"]["template"]["spec"]}],
        )
        for deployment in deployments
    }


def release_generator(model: Model, variant: str, part_of: str) -> dict:
    """The configMapGenerator entry of one release ConfigMap (``MODEL_VERSION``): the overlay
    merges its pinned value in (``release.yaml``), and the content-hash suffix rolls the server
    and re-runs training when it changes."""
    return {
        "name": release_config_map_name(model.name, variant),
        "literals": [f"{RELEASE_KEY}={DEFAULT_MODEL_VERSION}"],
        "options": {
            "labels": {"app.kubernetes.io/instance": model.name, "app.kubernetes.io/part-of": part_of},
            # Created before the training hook (-1) that reads it.
            "annotations": {"argocd.argoproj.io/sync-wave": "-2"},
        },
    }


def inline_patch(patch: dict | list) -> str:
    """The text of a Kustomize inline ``patch:`` (a strategic-merge object or JSON 6902 operations)."""
    return yaml.safe_dump(patch, sort_keys=False)


def component_kustomization(strategy: Strategy, models: tuple[Model, ...], part_of: str, files: list[str]) -> dict:
    """A server component's kustomization: its resources, its release ConfigMaps (one per
    variant), and, for blue-green, the patch that points the shared Service at the first slot."""
    selector = strategy.shared_service_selector()
    patches = [
        {
            "patch": inline_patch(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": f"{model.name}-server"},
                    "spec": {"selector": selector},
                }
            )
        }
        for model in models
        if selector
    ]
    return {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": files,
        "configMapGenerator": [
            release_generator(model, variant, part_of) for model in models for variant in strategy.released_variants
        ],
        **({"patches": patches} if patches else {}),
        **({"replacements": canary_weight_replacements(strategy, models)} if strategy.routes_by_weight else {}),
    }


def canary_weight_replacements(strategy: Strategy, models: tuple[Model, ...]) -> list[dict]:
    """Kustomize replacements that copy each track's weight from the overlay's CanaryWeights
    (``traffic.yaml``, weights only) into the weighted rule of both canary routes (HTTP and gRPC),
    so one edit moves both: the routes themselves are written once, here, and a generator change
    to them is never overwritten by an overlay."""
    return [
        {
            "source": {
                "kind": CANARY_WEIGHTS_KIND,
                "name": canary_weights_name(model.name),
                "fieldPath": f"spec.{track}",
            },
            "targets": [
                {
                    "select": {"kind": kind, "name": f"{model.name}-server"},
                    "fieldPaths": [f"spec.rules.{WEIGHTED_RULE}.backendRefs.[name={service}].weight"],
                }
                for kind in CANARY_ROUTE_KINDS
            ],
        }
        for model in models
        for track, service in strategy.variant_services(f"{model.name}-server").items()
    ]
