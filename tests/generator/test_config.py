"""platform.yaml checking: every bad input gets one exact, located line; good input loads."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from generator.config import ConfigError, load_config, parse_quantity
from generator.paths import REPO_ROOT

GOOD = yaml.safe_load((REPO_ROOT / "platform.yaml").read_text())


def write_platform(tmp_path: Path, data: dict | str) -> Path:
    """A platform.yaml in tmp_path, with the overlay directories it names."""
    for env in GOOD["environments"]:
        (tmp_path / env["overlay"]).mkdir(parents=True, exist_ok=True)
        (tmp_path / env["overlay"] / "kustomization.yaml").write_text("resources: [../base]\n")
    path = tmp_path / "platform.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def mutated(change) -> dict:
    data = copy.deepcopy(GOOD)
    change(data)
    return data


def problems(tmp_path: Path, data) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write_platform(tmp_path, data))
    return caught.value.problems


BAD_CONFIGS = {
    "max below min": (
        lambda d: d["serving"]["autoscaling"].update(maxReplicas=1),
        ["platform.yaml: serving.autoscaling.maxReplicas: must be >= minReplicas (2)"],
    ),
    "typo in a key": (
        lambda d: d["serving"].update(replicas=3),
        [
            "platform.yaml: serving.replicas: unknown key "
            "(allowed: autoscaling, clientNamespaces, gateway, grpc, grpcPort, gunicorn, metricsPort, "
            "podDisruptionBudget, port, resources)"
        ],
    ),
    "metrics on a serving port": (
        lambda d: d["serving"].update(metricsPort=d["serving"]["grpcPort"]),
        ["platform.yaml: serving.metricsPort: must differ from serving.port (8080) and grpcPort (8500)"],
    ),
    "a route for every host": (
        lambda d: d["serving"]["gateway"].update(hostnames=[]),
        ["platform.yaml: serving.gateway.hostnames: [] should be non-empty"],
    ),
    "a gateway without its proxy pods": (
        lambda d: d["serving"]["gateway"].pop("proxyPodLabels"),
        ["platform.yaml: serving.gateway.proxyPodLabels: is required"],
    ),
    "train not a boolean": (
        lambda d: d["environments"][0].update(train="yes"),
        ["platform.yaml: environments[0].train: 'yes' is not of type 'boolean'"],
    ),
    "no workers": (
        lambda d: d["training"].update(workers=0),
        ["platform.yaml: training.workers: 0 must be >= 1"],
    ),
    "too many workers": (
        lambda d: d["training"].update(workers=65),
        ["platform.yaml: training.workers: 65 must be <= 64"],
    ),
    "namespace not DNS-1123": (
        lambda d: d["environments"][0].update(namespace="ML_Dev"),
        [
            "platform.yaml: environments[0].namespace: 'ML_Dev' is not a DNS-1123 label "
            "(lower-case letters, digits and '-', at most 63)"
        ],
    ),
    "duplicate environment": (
        # prod (staging is previews.pinFrom: renaming it would add that line)
        lambda d: d["environments"][2].update(name="dev"),
        ["platform.yaml: environments[2].name: duplicate name 'dev' (also environments[0])"],
    ),
    "overlay missing": (
        lambda d: d["environments"][2].update(overlay="overlays/production"),
        ["platform.yaml: environments[2].overlay: overlays/production/kustomization.yaml does not exist"],
    ),
    "latest tag": (
        lambda d: d["images"]["server"].update(tag="latest"),
        ["platform.yaml: images.server.tag: 'latest' is mutable; pin a version tag or a digest"],
    ),
    "unknown backend": (
        lambda d: d["models"][0].update(backend="onnx"),
        ["platform.yaml: models[0].backend: 'onnx' is not one of litert, tensorflow"],
    ),
    "missing section": (lambda d: d.pop("argocd"), ["platform.yaml: argocd: is required"]),
    "requests above limits": (
        lambda d: d["serving"]["resources"]["requests"].update(memory="1Gi"),
        ["platform.yaml: serving.resources.requests.memory: must be <= limits.memory (768Mi)"],
    ),
    "bad quantity": (
        lambda d: d["training"]["resources"]["limits"].update(memory="lots"),
        [
            "platform.yaml: training.resources.limits.memory: 'lots' is not valid "
            "(must match ^[0-9]+(\\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$)"
        ],
    ),
    "tag and digest": (
        lambda d: d["images"]["trainer"].update(digest="sha256:" + "a" * 64),
        ["platform.yaml: images.trainer: give exactly one of tag or digest"],
    ),
    "generated overlay as environment": (
        lambda d: d["environments"][0].update(overlay="overlays/base"),
        ["platform.yaml: environments[0].overlay: 'overlays/base' is generated; an environment needs its own overlay"],
    ),
    "model store not shareable": (
        lambda d: d["training"]["storage"].update(accessModes=["ReadWriteOnce"]),
        [
            "platform.yaml: training.storage.accessModes: ['ReadWriteOnce'] cannot work: the training Job writes the "
            "model store while server pods on other nodes read it; use ReadWriteMany (an NFS-like storage class)"
        ],
    ),
    "a model repository without a registry host": (
        lambda d: d["modelArtifacts"].update(repository="ml/models"),
        [
            "platform.yaml: modelArtifacts.repository: 'ml/models' names no registry host: start it with one "
            "(registry.example.com/ml/models, host:port/ml/models), as every pull and push of a model image needs"
        ],
    ),
    "a schedule cron cannot read": (
        lambda d: d["training"].update(schedule="junk 0 3 * * 0"),
        ["platform.yaml: training.schedule: 'junk 0 3 * * 0' is not a CronJob schedule (five fields, or @hourly ...)"],
    ),
    "a sync window cron cannot read": (
        lambda d: d["environments"][2].update(syncWindows=[{"kind": "deny", "schedule": "Sat", "duration": "1h"}]),
        [
            "platform.yaml: environments[2].syncWindows[0].schedule: 'Sat' is not a CronJob schedule "
            "(five fields, or @hourly ...)"
        ],
    ),
    "a sync window that never closes": (
        lambda d: d["environments"][2].update(
            syncWindows=[{"kind": "deny", "schedule": "0 0 * * 6", "duration": "2d"}]
        ),
        [
            "platform.yaml: environments[2].syncWindows[0].duration: '2d' is not valid "
            "(must match ^([1-9][0-9]*h([1-9][0-9]*m)?|[1-9][0-9]*m)$)"
        ],
    ),
    "an environment named like the admin project": (
        lambda d: d["environments"][0].update(name="admin"),
        [
            "platform.yaml: environments[0].name: 'admin' is taken: Argo CD projects <argocd.project>-admin "
            "are the admin project"
        ],
    ),
    "an environment in Argo CD's namespace": (
        lambda d: d["environments"][0].update(namespace="argocd"),
        ["platform.yaml: environments[0].namespace: 'argocd' is Argo CD's namespace (argocd.namespace)"],
    ),
    "a gate no card metric backs": (
        lambda d: d["environments"][1].update(gates={"minF1": 0.9}),
        ["platform.yaml: environments[1].gates.minF1: unknown key (allowed: maxLoss, minAccuracy, minHoldoutExamples)"],
    ),
    "exposure typo": (
        lambda d: d["environments"][0].update(exposure={"nodeport": True}),
        [
            "platform.yaml: environments[0].exposure.nodeport: unknown key "
            "(allowed: externalIPs, loadBalancer, nodePort)"
        ],
    ),
    "exposure not a boolean": (
        lambda d: d["environments"][1].update(exposure={"loadBalancer": "yes"}),
        ["platform.yaml: environments[1].exposure.loadBalancer: 'yes' is not of type 'boolean'"],
    ),
    "selfHeal without automation": (
        lambda d: d["environments"][2].update(sync={"automated": False, "selfHeal": True}),
        ["platform.yaml: environments[2].sync.selfHeal: needs automated: true (Argo CD ignores it otherwise)"],
    ),
}


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=list(BAD_CONFIGS))
def test_bad_config_gives_exact_message(tmp_path, case):
    change, expected = BAD_CONFIGS[case]
    assert problems(tmp_path, mutated(change)) == expected


def test_several_semantic_problems_each_get_a_line(tmp_path):
    def change(d):
        d["serving"]["autoscaling"].update(maxReplicas=1)
        d["environments"][1].update(namespace=d["environments"][0]["namespace"])

    assert problems(tmp_path, mutated(change)) == [
        "platform.yaml: serving.autoscaling.maxReplicas: must be >= minReplicas (2)",
        "platform.yaml: environments[1].namespace: duplicate namespace 'ml-dev' (also environments[0])",
    ]


def test_duplicate_yaml_key_is_an_error(tmp_path):
    text = (REPO_ROOT / "platform.yaml").read_text().replace("  port: 8080\n", "  port: 8080\n  port: 9090\n")
    first = text.splitlines().index("  port: 8080") + 1
    assert problems(tmp_path, text) == [
        f"platform.yaml: line {first + 1}, column 3: duplicate key 'port' (first on line {first})"
    ]


def test_unparsable_yaml_names_the_line(tmp_path):
    assert problems(tmp_path, "system: [unclosed\n")[0].startswith("platform.yaml: line 2, column 1: ")


def test_repository_platform_loads(platform):
    assert [m.name for m in platform.models] == ["mnist"]
    assert {e.name for e in platform.environments} >= {"dev", "staging", "prod"}


def test_environments_only_serve_unless_platform_yaml_says_they_train(tmp_path):
    """train defaults to false (serve-only); the repository's dev trains and nothing else does."""
    data = mutated(lambda d: [env.pop("train", None) for env in d["environments"]])
    assert not any(e.train for e in load_config(write_platform(tmp_path, data)).environments)
    repository = load_config(REPO_ROOT / "platform.yaml")
    assert [e.name for e in repository.environments if e.train] == ["dev"]


def test_services_stay_inside_the_cluster_unless_an_environment_allows_more(tmp_path):
    """environments[].exposure: every kind refused by default (the cluster's admission policies
    bind to the environments that do not allow it), each allowed on its own."""
    data = mutated(lambda d: d["environments"][0].update(exposure={"loadBalancer": True}))
    dev, *others = load_config(write_platform(tmp_path, data)).environments
    assert (dev.exposure.node_port, dev.exposure.load_balancer, dev.exposure.external_ips) == (False, True, False)
    assert not any(e.exposure.node_port or e.exposure.load_balancer or e.exposure.external_ips for e in others)


def test_quantities_compare_by_value():
    assert parse_quantity("500m") < parse_quantity("1") < parse_quantity("1100m")
    assert parse_quantity("1Gi") > parse_quantity("1G") > parse_quantity("768Mi")


def test_cli_exit_code_two_and_nothing_written(tmp_path):
    path = write_platform(tmp_path, mutated(lambda d: d["serving"]["autoscaling"].update(maxReplicas=1)))
    result = subprocess.run(
        [sys.executable, "-m", "generator", "synth", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 2
    assert "platform.yaml: serving.autoscaling.maxReplicas: must be >= minReplicas (2)" in result.stderr
    assert not (tmp_path / "argocd").exists() and not (tmp_path / "overlays" / "base").exists()
