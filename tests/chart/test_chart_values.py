"""The values interface of charts/inference-service: helm lint --strict, values.schema.json
rejections with clear messages, cross-field checks, and the README parameter table."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml
from chart_helpers import CHART, VALUES_DIR, run_helm, template

from generator.tools.readme_generator import render_readme
from services.contract import (
    DIGEST,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    GRPC_PORT,
    IMAGE_REPOSITORY,
    IMAGE_TAG,
    LABEL_KEY,
    LABEL_VALUE,
    NAME_MAX,
    whole,
)

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--values", str(VALUES_DIR / "production.yaml")],
        ["--set", "slot=green"],
        ["--set", "track=canary", "--values", str(VALUES_DIR / "production.yaml")],
    ],
    ids=["defaults", "production", "slot=green", "production,track=canary"],
)
def test_helm_lint_strict_is_clean(args):
    result = run_helm("lint", "--strict", str(CHART), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_schema_is_draft07_and_accepts_the_defaults():
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)
    production = yaml.safe_load((VALUES_DIR / "production.yaml").read_text())
    jsonschema.Draft7Validator(SCHEMA).validate(_merge(VALUES, production))


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def test_schema_closes_every_object_the_chart_defines():
    """additionalProperties: false wherever the chart defines the keys (free-form Kubernetes
    objects and string maps excepted)."""
    free = {
        "global",
        "commonLabels",
        "commonAnnotations",
        "podAnnotations",
        "podLabels",
        "nodeSelector",
        "affinity",
        "behavior",
        "annotations",
        "podSelector",
        "namespaceSelector",
        "windowsOptions",
        "valueFrom",
    }

    def walk(node: dict, path: str) -> None:
        if node.get("type") == "object" and path.rsplit(".", 1)[-1] not in free:
            assert node.get("additionalProperties") is False, f"{path or '<root>'} is open"
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}".lstrip("."))
        if isinstance(node.get("items"), dict):
            walk(node["items"], path + "[]")

    walk(SCHEMA, "")


#: The chart schema's copies of the rules in services/contract.py (JSON Schema cannot import
#: Python): where each one is, and what it must be.
CONTRACT_PATTERNS = {
    "nameOverride": f"^$|{whole(DNS_LABEL)}",
    "fullnameOverride": f"^$|{whole(DNS_LABEL)}",
    "priorityClassName": f"^$|{whole(DNS_LABEL)}",
    "partOf": whole(LABEL_VALUE),
    "managedBy": whole(LABEL_VALUE),
    "commonLabels.propertyNames": whole(LABEL_KEY),
    "commonLabels.additionalProperties": whole(LABEL_VALUE),
    "podLabels.propertyNames": whole(LABEL_KEY),
    "podLabels.additionalProperties": whole(LABEL_VALUE),
    "image.repository": whole(IMAGE_REPOSITORY),
    "image.tag": f"^$|{whole(IMAGE_TAG)}",
    "image.digest": f"^$|{whole(DIGEST)}",
    "model.name": whole(DNS_LABEL),
    "model.versionConfigMap": f"^({DNS_SUBDOMAIN})?$",
    "model.storage.claimName": whole(DNS_SUBDOMAIN),
    "model.artifact.image": f"^({IMAGE_REPOSITORY}@{DIGEST})?$",
    "model.artifact.pullSecret": f"^({DNS_SUBDOMAIN})?$",
    "serviceAccount.name": f"^$|{whole(DNS_SUBDOMAIN)}",
    "configMap.name": f"^$|{whole(DNS_SUBDOMAIN)}",
}


def _schema_at(path: str) -> dict:
    """The schema of ``path`` (dotted; ``propertyNames`` and ``additionalProperties`` are keywords)."""
    node = SCHEMA
    for part in path.split("."):
        node = node[part] if part in ("propertyNames", "additionalProperties") else node["properties"][part]
    return node


@pytest.mark.parametrize("path", sorted(CONTRACT_PATTERNS))
def test_schema_patterns_are_the_contracts(path):
    """Names, labels, images and digests follow the rules the generator and the services share."""
    assert _schema_at(path)["pattern"] == CONTRACT_PATTERNS[path]


def test_a_model_name_is_what_platform_yaml_and_the_server_accept():
    assert _schema_at("model.name")["maxLength"] == NAME_MAX


def test_the_grpc_ports_are_tf_servings():
    assert VALUES["server"]["grpcPort"] == VALUES["service"]["grpcPort"] == GRPC_PORT


@pytest.mark.parametrize(
    "sets,message",
    [
        (["model.backend=onnx"], "at '/model/backend': value must be one of 'litert', 'tensorflow'"),
        (["modle.name=x"], "additional properties 'modle' not allowed"),
        (["server.wokers=2"], "at '/server': additional properties 'wokers' not allowed"),
        (["slot=blue", "track=canary"], "slot and track are mutually exclusive"),
        (["slot=purple"], "at '/slot': value must be one of '', 'blue', 'green'"),
        (["track=beta"], "at '/track': value must be one of '', 'stable', 'canary'"),
        (["image.tag=latest"], "latest is a mutable tag"),
        (["image.tag=", "image.digest="], "image.tag or image.digest must be set"),
        (["image.digest=sha256:1234"], "at '/image/digest'"),
        (["resources.limits.memory=lots"], "at '/resources/limits/memory'"),
        (["resources.requests.cpu=fast"], "at '/resources/requests/cpu'"),
        (["resources.requests.cpu=null"], "at '/resources/requests': missing property 'cpu'"),
        (["server.port=80"], "at '/server/port': minimum"),
        (["server.logLevel=verbose"], "at '/server/logLevel'"),
        (["model.version=latest"], "at '/model/version'"),
        (["model.version=0"], "at '/model/version'"),
        (["model.name=MNIST"], "at '/model/name'"),
        (["server.maxBodyBytes=10"], "at '/server/maxBodyBytes': minimum"),
        (["fullnameOverride=Mnist_Server"], "at '/fullnameOverride'"),
        (["podSecurityContext.runAsUsr=1"], "additional properties 'runAsUsr' not allowed"),
        (["networkPolicy.ingressFrom[0].pods.app=x"], "at '/networkPolicy/ingressFrom/0'"),
        (["extraEnv[0].name=MODEL_VERSION", "extraEnv[0].value=1"], "at '/extraEnv/0/name'"),
    ],
    ids=lambda v: v if isinstance(v, str) else ",".join(v),
)
def test_schema_rejects_bad_values_with_a_clear_message(sets, message):
    result = template(*sets)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize(
    "sets,message",
    [
        (
            ["terminationGracePeriodSeconds=20"],
            "terminationGracePeriodSeconds (20) must be greater than server.gracefulTimeoutSeconds (20)"
            " + lifecycle.preStopSleepSeconds (5)",
        ),
        (["autoscaling.minReplicas=8"], "autoscaling.minReplicas (8) must be <= autoscaling.maxReplicas (6)"),
        (["podDisruptionBudget.maxUnavailable="], "set maxUnavailable or minAvailable"),
    ],
)
def test_cross_field_checks_fail_with_a_clear_message(sets, message):
    result = template(*sets)
    assert result.returncode != 0
    assert "inference-service: invalid values:" in result.stderr
    assert message in result.stderr, result.stderr


def test_several_errors_are_reported_at_once():
    result = template("terminationGracePeriodSeconds=5", "autoscaling.minReplicas=8")
    assert result.returncode != 0
    assert "terminationGracePeriodSeconds (5)" in result.stderr and "minReplicas (8)" in result.stderr


def test_default_image_tag_is_the_app_version_and_pinned():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert VALUES["image"]["tag"] == chart["appVersion"]
    assert VALUES["image"]["tag"] not in ("", "latest")


# --- README ---------------------------------------------------------------------------------------


def _leaves(node, prefix=""):
    """Dotted paths of the leaves of values.yaml: scalars, lists and empty maps."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def _params() -> dict[str, str]:
    """`## @param <path> <description>` annotations of values.yaml."""
    return dict(re.findall(r"^\s*## @param (\S+) (.+)$", (CHART / "values.yaml").read_text(), re.M))


def test_every_value_is_annotated():
    params = _params()
    assert set(params) == set(_leaves(VALUES)), "values.yaml leaves and @param lines differ"


def test_readme_table_documents_every_value_with_its_default():
    readme = (CHART / "README.md").read_text()
    assert render_readme(CHART) == readme, "README parameter tables are stale: run make chart-readme"
    rows = re.findall(r"^\| `([^`]+)` +\|", readme, re.M)
    assert sorted(rows) == sorted(_leaves(VALUES))


@pytest.mark.parametrize(
    "sets,expected",
    [
        (
            [],
            [
                "deployment/mnist-inference-service",
                "port-forward service/mnist-inference-service 8080:80",
                "the serving ports (8080, 8500) admit the pods of namespace serving;",
                "the metrics port (8081) admits nobody: list your Prometheus pods in networkPolicy.metricsFrom",
            ],
        ),
        (
            ["networkPolicy.sameNamespace=false", "networkPolicy.metricsFrom[0].podSelector.matchLabels.app=prom"],
            ["the serving ports (8080, 8500) admit nobody;", "the metrics port (8081) admits 1 peer(s)"],
        ),
        (
            ["slot=blue", "service.enabled=false", "autoscaling.enabled=false", "replicaCount=1"],
            [
                "deployment/mnist-inference-service-blue",
                "No Service rendered",
                ",slot=blue",
                "WARNING: replicaCount is 1",
            ],
        ),
    ],
)
def test_notes(sets, expected):
    args = [a for s in sets for a in ("--set", s)]
    result = run_helm("install", "mnist", str(CHART), "--dry-run=client", "--namespace", "serving", *args)
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    for text in expected:
        assert text in notes, notes
