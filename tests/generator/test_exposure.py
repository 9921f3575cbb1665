"""What the rendered overlays expose (issue 29, item 4), read from the real kustomize output: the
canary HTTPRoute routes the predict paths alone, and its GRPCRoute the Predict method alone, with
the same weights, for platform.yaml's hosts and listener; the server's NetworkPolicy admits the
Gateway's proxy pods (and client namespaces) to the serving ports and Prometheus's pods to the
metrics port, each to its own ports only; every environment namespace has a default-deny policy;
gRPC reflection is off unless platform.yaml turns it on."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from generator.paths import REPO_ROOT
from generator.synthesis.synth import render_tree, write_tree
from generator.tools import render_overlay
from services.contract import PREDICT_METHOD, PREDICTION_SERVICE
from services.inference import tfserving

MODEL = "mnist"
#: Paths a client could ask the Gateway for, and whether the canary route may route each.
PATHS = {
    f"/v1/models/{MODEL}:predict": True,
    f"/v1/models/{MODEL}/versions/3:predict": True,
    "/metrics": False,
    f"/v1/models/{MODEL}": False,
    f"/v1/models/{MODEL}/metadata": False,
    f"/v1/models/{MODEL}/versions/3": False,
    f"/v1/models/{MODEL}/versions/3/metadata": False,
    f"/v1/models/{MODEL}:predictx": False,
    f"/v1/models/{MODEL}/versions/3:predict/metadata": False,
    f"/v1/models/{MODEL}/versions/x:predict": False,
    "/v1/models/other:predict": False,
    "/v2/health/ready": False,
    f"/v2/models/{MODEL}/ready": False,
}


def _one(objects: list[dict], kind: str, name: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _routed(match: dict, path: str) -> bool:
    """Whether an HTTPRoute path match takes ``path`` (Exact: equal; RegularExpression: the whole
    path, as Envoy, Istio and NGINX match it)."""
    kind, value = match["path"]["type"], match["path"]["value"]
    if kind == "Exact":
        return path == value
    assert kind == "RegularExpression", f"a path match that is neither Exact nor a regex: {kind}"
    return re.fullmatch(value, path) is not None


def test_the_canary_route_takes_only_the_predict_paths_of_its_hosts(rendered, platform):
    objects = rendered["prod-canary"]
    route = _one(objects, "HTTPRoute", f"{MODEL}-server")["spec"]
    gateway = platform.serving.gateway
    (parent,) = route["parentRefs"]
    assert (parent["name"], parent["namespace"], parent["sectionName"]) == (
        gateway.name,
        gateway.namespace,
        gateway.section_name,
    )
    assert route["hostnames"] == list(gateway.hostnames)
    matches = [match for rule in route["rules"] for match in rule["matches"]]
    assert all(set(match) == {"path"} for match in matches), "a client header or query picks no backend"
    for path, allowed in PATHS.items():
        assert any(_routed(m, path) for m in matches) == allowed, path


def test_the_route_reaches_the_serving_port_and_prometheus_the_metrics_port(rendered, platform):
    objects = rendered["prod-canary"]
    route = _one(objects, "HTTPRoute", f"{MODEL}-server")["spec"]
    for ref in (ref for rule in route["rules"] for ref in rule["backendRefs"]):
        service = _one(objects, "Service", ref["name"])
        (port,) = [p for p in service["spec"]["ports"] if p["port"] == ref["port"]]
        assert port["targetPort"] == "http"
        assert "metrics" not in {p["name"] for p in service["spec"]["ports"]}, "a routed Service exposes /metrics"
    monitor = _one(objects, "ServiceMonitor", f"{MODEL}-server")["spec"]
    (endpoint,) = monitor["endpoints"]
    scraped = _one(objects, "Service", f"{MODEL}-server-metrics")
    (port,) = [p for p in scraped["spec"]["ports"] if p["name"] == endpoint["port"]]
    deployment = _one(objects, "Deployment", f"{MODEL}-server-stable")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (declared,) = [p["containerPort"] for p in container["ports"] if p["name"] == port["targetPort"]]
    config = _one(objects, "ConfigMap", container["envFrom"][0]["configMapRef"]["name"])["data"]
    assert int(config["METRICS_PORT"]) == declared == platform.serving.metrics_port
    assert declared not in (int(config["PORT"]), int(config["GRPC_PORT"]))


def test_the_canary_grpc_route_takes_only_predict_of_its_hosts_with_the_http_weights(rendered, platform):
    objects = rendered["prod-canary"]
    (grpc_route,) = [o for o in objects if o["kind"] == "GRPCRoute"]
    assert grpc_route["metadata"]["name"] == f"{MODEL}-server"
    spec, http = grpc_route["spec"], _one(objects, "HTTPRoute", f"{MODEL}-server")["spec"]
    gateway = platform.serving.gateway
    assert spec["parentRefs"] == http["parentRefs"]
    assert spec["parentRefs"][0]["sectionName"] == gateway.section_name
    assert spec["hostnames"] == list(gateway.hostnames)
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"method": {"type": "Exact", "service": PREDICTION_SERVICE, "method": PREDICT_METHOD}}]
    # The method the route names is one TF Serving's API declares (and the server registers by
    # the same contract names), and not the only one: the route leaves GetModelMetadata out.
    service = tfserving.POOL.FindServiceByName(PREDICTION_SERVICE)
    assert PREDICT_METHOD in service.methods_by_name
    assert set(service.methods_by_name) - {PREDICT_METHOD}
    (http_rule,) = http["rules"]
    weights = {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}
    assert weights == {ref["name"]: ref["weight"] for ref in http_rule["backendRefs"]}
    assert sum(weights.values()) == 100
    for ref in rule["backendRefs"]:
        (port,) = [p for p in _one(objects, "Service", ref["name"])["spec"]["ports"] if p["port"] == ref["port"]]
        assert (port["targetPort"], port["port"]) == ("grpc", platform.serving.grpc_port)
    for overlay in ("dev", "staging", "prod", "prod-blue-green"):
        assert not [o for o in rendered[overlay] if o["kind"] == "GRPCRoute"], overlay


@pytest.mark.parametrize("overlay", ["dev", "staging", "prod", "prod-blue-green", "prod-canary"])
def test_each_peer_reaches_only_its_ports_and_the_namespace_denies_the_rest(rendered, platform, overlay):
    objects = rendered[overlay]
    serving, monitoring = platform.serving, platform.monitoring
    deny = _one(objects, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}

    policy = _one(objects, "NetworkPolicy", f"{MODEL}-server")["spec"]
    rules = {tuple(sorted(p["port"] for p in rule["ports"])): rule["from"] for rule in policy["ingress"]}
    proxies = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": serving.gateway.namespace}},
        "podSelector": {"matchLabels": dict(serving.gateway.proxy_pod_labels)},
    }
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": monitoring.prometheus_namespace}},
        "podSelector": {"matchLabels": dict(monitoring.prometheus_pod_labels)},
    }
    clients = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
        for namespace in serving.client_namespaces
    ]
    assert rules == {
        tuple(sorted((serving.port, serving.grpc_port))): [proxies, *clients],
        (serving.metrics_port,): [prometheus],
    }
    assert policy["policyTypes"] == ["Ingress", "Egress"]


def test_reflection_is_off_everywhere_unless_platform_yaml_turns_it_on(rendered, tmp_path):
    for objects in rendered.values():
        configs = [o for o in objects if o["kind"] == "ConfigMap" and "GRPC_PORT" in o.get("data", {})]
        assert configs and all(c["data"]["GRPC_REFLECTION"] == "false" for c in configs)
    shutil.copytree(REPO_ROOT / "overlays", tmp_path / "overlays")
    shutil.copytree(REPO_ROOT / "registry", tmp_path / "registry")
    data = yaml.safe_load((REPO_ROOT / "platform.yaml").read_text())
    data["serving"]["grpc"] = {"reflection": True, "maxConcurrentRpcs": 5}
    (tmp_path / "platform.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    write_tree(render_tree(tmp_path / "platform.yaml"), tmp_path)
    objects = [d for d in yaml.safe_load_all(render_overlay(tmp_path / "overlays" / "prod")) if d]
    (config,) = [o for o in objects if o["kind"] == "ConfigMap" and "GRPC_PORT" in o.get("data", {})]
    assert (config["data"]["GRPC_REFLECTION"], config["data"]["GRPC_MAX_CONCURRENT_RPCS"]) == ("true", "5")
