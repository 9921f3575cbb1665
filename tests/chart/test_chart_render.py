"""What charts/inference-service renders, with the real helm: names, labels, selectors, the server
contract, pod security, toggles, progressive-delivery variants and determinism."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
from chart_helpers import CHART, RELEASE, one, render, run_helm, template

from generator.conventions import KUBERNETES_VERSION as K8S_VERSION  # the version the repository validates against
from generator.synthesis.chart import container_security_context, pod_security_context
from generator.validate.kube import pod_template
from generator.validate.model import Resource
from generator.validate.policies import pod_security
from services.contract import (
    DNS_LABEL,
    DNS_LABEL_MAX,
    FETCH_CONTAINER,
    GRPC_PORT,
    LABEL_VALUE,
    METRICS_PORT,
    MODEL_IMAGE_ENV,
    MODEL_IMAGE_MOUNT,
    MODEL_IMAGE_VOLUME,
    matches,
)

# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion ">=1.30.0-0") and the pinned one.
MIN_K8S_VERSION = re.search(r'kubeVersion: ">=(\d+\.\d+)', (CHART / "Chart.yaml").read_text()).group(1)
CHART_VERSION = re.search(r"^version: (\S+)$", (CHART / "Chart.yaml").read_text(), re.M).group(1)
FULLNAME = "mnist-inference-service"
VARIANTS = {
    "default": (),
    "slot=blue": ("slot=blue",),
    "slot=green": ("slot=green",),
    "track=stable": ("track=stable",),
    "track=canary": ("track=canary",),
    # The pinned version served from its OCI image (an image volume) instead of the model store.
    "model-image": (
        "model.version=3",
        "model.artifact.image=registry.example.com/ml/models/mnist@sha256:" + "cd" * 32,
        "model.artifact.delivery=imageVolume",
    ),
    # ...or pulled by the fetch-model init container, which may reach the registry's port.
    "model-image-init": (
        "model.version=3",
        "model.artifact.image=registry.example.com/ml/models/mnist@sha256:" + "cd" * 32,
        "networkPolicy.egressTo[0].ports[0].port=443",
    ),
}
WORKLOAD_KINDS = {"Deployment", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
SHARED_KINDS = {"Service", "ServiceAccount", "NetworkPolicy"}
ALL_KINDS = WORKLOAD_KINDS | SHARED_KINDS
SERVER_ENV = {
    "PORT",
    "GRPC_PORT",
    "WORKERS",
    "THREADS",
    "GRACEFUL_TIMEOUT",
    "LOG_LEVEL",
    "MODEL_NAME",
    "MODEL_BASE_PATH",
    "MODEL_BACKEND",
    "MODEL_POLL_SECONDS",
    "MAX_BATCH_SIZE",
    "MAX_BODY_BYTES",
    "INTRA_OP_THREADS",
    # further knobs of services/inference/settings.py
    "INTER_OP_THREADS",
    "WORKER_TIMEOUT",
    "ACCESS_LOG",
    # the metrics listener and the gRPC limits (issue 29)
    "METRICS_PORT",
    "GRPC_MAX_CONCURRENT_RPCS",
    "GRPC_KEEPALIVE_SECONDS",
    "GRPC_KEEPALIVE_TIMEOUT_SECONDS",
    "GRPC_MAX_CONNECTION_AGE_SECONDS",
    "GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS",
    "GRPC_REFLECTION",
}
DIGEST = "sha256:" + "ab" * 32


def container(docs: list[dict]) -> dict:
    containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["server"]
    return containers[0]


def pod_spec(docs: list[dict]) -> dict:
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def all_renders() -> list[tuple[str, tuple[str, ...], str | None]]:
    cases = [(name, sets, None) for name, sets in VARIANTS.items()]
    cases += [(f"production,{name}", sets, "production.yaml") for name, sets in VARIANTS.items()]
    return cases


RENDER_IDS = [c[0] for c in all_renders()]


# --- every variant ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,sets,values", all_renders(), ids=RENDER_IDS)
def test_every_resource_is_valid_kubernetes(name, sets, values):
    """Strict schemas of the pinned and of the oldest supported Kubernetes version: unknown
    fields and wrong types fail."""
    docs = render(*sets, values=values)
    assert {d["kind"] for d in docs} == ALL_KINDS
    # Image volumes are Kubernetes 1.31+ (the chart refuses a model image on an older cluster).
    oldest = "1.31" if name.endswith("model-image") else MIN_K8S_VERSION
    for version in sorted({K8S_VERSION, oldest}):
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("name,sets,values", all_renders(), ids=RENDER_IDS)
def test_selectors_are_subsets_of_pod_labels(name, sets, values):
    docs = render(*sets, values=values)
    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert "app.kubernetes.io/version" not in selector
    assert one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    for constraint in pod_spec(docs)["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"] == selector
    # Shared resources select every slot/track of the release: name and instance only.
    shared = {"app.kubernetes.io/name": "inference-service", "app.kubernetes.io/instance": RELEASE}
    assert one(docs, "Service")["spec"]["selector"] == shared
    assert one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"] == shared
    assert shared.items() <= pod_labels.items()


@pytest.mark.parametrize("name,sets,values", all_renders(), ids=RENDER_IDS)
def test_restricted_pod_security(name, sets, values):
    """Every pod runs with the chart's default security contexts (the repository's one definition
    of them), which meet Pod Security "restricted" as make validate's policy checks state it."""
    docs = render(*sets, values=values)
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        template = pod_template(Resource(doc, name))
        assert template is not None and pod_security(template) == []
        spec = template.spec
        assert spec["securityContext"] == pod_security_context()
        assert spec["automountServiceAccountToken"] is False
        for c in spec["containers"] + spec.get("initContainers", []):
            assert c["securityContext"] == container_security_context()
            for side in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][side])
    assert one(docs, "ServiceAccount")["automountServiceAccountToken"] is False


@pytest.mark.parametrize("name,sets,values", all_renders(), ids=RENDER_IDS)
def test_labels(name, sets, values):
    docs = render(*sets, values=values)
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "inference-service"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/component"] == "server"
        assert labels["app.kubernetes.io/version"]
        assert "helm.sh/chart" not in labels, "off by default: it churns every generated diff"
        assert all(matches(LABEL_VALUE, str(v)) for v in labels.values())
        if values:
            assert labels["app.kubernetes.io/part-of"] == "ml-platform"
            assert labels["app.kubernetes.io/managed-by"] == "cdk8s"
            assert labels["team"] == "ml-platform"
        else:
            assert "app.kubernetes.io/part-of" not in labels
            assert labels["app.kubernetes.io/managed-by"] == "Helm"


# --- names and progressive delivery ------------------------------------------------------------


@pytest.mark.parametrize("variant", ["blue", "green", "stable", "canary", ""])
def test_workload_resources_carry_the_variant(variant):
    key = {"blue": "slot", "green": "slot", "stable": "track", "canary": "track"}.get(variant)
    docs = render(f"{key}={variant}") if key else render()
    suffix = f"-{variant}" if variant else ""
    for doc in docs:
        name, labels = doc["metadata"]["name"], doc["metadata"]["labels"]
        if doc["kind"] in WORKLOAD_KINDS:
            assert name == FULLNAME + suffix
            if key:
                assert labels[key] == variant
        else:
            assert name == FULLNAME
            assert "slot" not in labels and "track" not in labels
    deployment = one(docs, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    if key:
        assert selector[key] == variant and pod_labels[key] == variant
        assert ({"slot", "track"} - {key}).isdisjoint(selector)
    else:
        assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance"}
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME + suffix}
    envfrom = container(docs)["envFrom"][0]["configMapRef"]["name"]
    assert envfrom == one(docs, "ConfigMap")["metadata"]["name"] == FULLNAME + suffix
    assert pod_spec(docs)["serviceAccountName"] == FULLNAME


@pytest.mark.parametrize(
    "scenario,renders",
    [
        ("blue-green", [("slot=blue",), ("slot=green",)]),
        ("canary", [("track=stable",), ("track=canary",)]),
    ],
)
def test_variants_compose_into_one_namespace(scenario, renders):
    """How the kustomize components use the chart: render each variant, shared resources once.
    The union has unique (kind, name); the shared Service selects the pods of both variants;
    each Deployment's selector matches only its own pods."""
    shared_off = (
        "service.enabled=false",
        "serviceAccount.create=false",
        f"serviceAccount.name={FULLNAME}",
        "networkPolicy.enabled=false",
    )
    first = render(*renders[0])
    second = render(*renders[1], *shared_off)
    assert not {d["kind"] for d in second} & SHARED_KINDS
    keys = [(d["kind"], d["metadata"]["name"]) for d in first + second]
    assert len(keys) == len(set(keys)), keys
    service_selector = one(first, "Service")["spec"]["selector"].items()
    deployments = [one(first, "Deployment"), one(second, "Deployment")]
    pods = [d["spec"]["template"]["metadata"]["labels"].items() for d in deployments]
    assert all(service_selector <= labels for labels in pods)
    for deployment, own in zip(deployments, pods, strict=True):
        selector = deployment["spec"]["selector"]["matchLabels"].items()
        assert sum(selector <= labels for labels in pods) == 1 and selector <= own
    assert all(d["spec"]["template"]["spec"]["serviceAccountName"] == FULLNAME for d in deployments)


def test_fullname_rules():
    assert one(render(release="my-inference-service"), "Service")["metadata"]["name"] == "my-inference-service"
    assert one(render(release="prod"), "Service")["metadata"]["name"] == "prod-inference-service"
    assert one(render("nameOverride=server", release="prod"), "Service")["metadata"]["name"] == "prod-server"
    docs = render("fullnameOverride=mnist-server", "slot=green")
    names = {d["kind"]: d["metadata"]["name"] for d in docs}
    assert names["Service"] == names["ServiceAccount"] == names["NetworkPolicy"] == "mnist-server"
    assert names["Deployment"] == names["HorizontalPodAutoscaler"] == "mnist-server-green"
    assert names["PodDisruptionBudget"] == names["ConfigMap"] == "mnist-server-green"


def test_long_names_stay_within_63_characters():
    long = "a" * 40 + "-" + "b" * 22  # 63 characters
    for sets in [(), ("slot=green",), ("track=canary",)]:
        docs = render(f"fullnameOverride={long}", *sets)
        for doc in docs:
            name = doc["metadata"]["name"]
            assert len(name) <= DNS_LABEL_MAX and matches(DNS_LABEL, name), name
        if sets:
            assert one(docs, "Deployment")["metadata"]["name"].endswith("-" + sets[0].split("=")[1])


# --- the server contract ------------------------------------------------------------------------


def test_container_contract():
    docs = render()
    c = container(docs)
    assert c["command"] == ["gunicorn", "--config", "/app/services/inference/gunicorn.conf.py"]
    assert "args" not in c
    assert c["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
    ]
    assert c["image"] == "ml-gitops/inference-server:0.1.0"
    for probe, path in [
        ("startupProbe", "/v2/health/live"),
        ("livenessProbe", "/v2/health/live"),
        ("readinessProbe", "/v2/health/ready"),
    ]:
        assert c[probe]["httpGet"] == {"path": path, "port": "http", "scheme": "HTTP"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, "model load takes ~60 s"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["model-store"] == {"name": "model-store", "mountPath": "/models", "readOnly": True}
    assert mounts["tmp"]["mountPath"] == "/tmp"
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    assert volumes["model-store"]["persistentVolumeClaim"] == {"claimName": "model-store", "readOnly": True}
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "64Mi"}
    # the preStop window already drains: keep-alive clients are told to reconnect elsewhere
    drain = ["python", "-m", "services.inference.drain", "--wait", "5"]
    assert c["lifecycle"]["preStop"] == {"exec": {"command": drain}}


def test_configmap_holds_the_server_settings_and_model_version_is_an_explicit_env():
    docs = render("model.version=7", "model.basePath=/mnt/store", "server.port=9000")
    data = one(docs, "ConfigMap")["data"]
    assert set(data) == SERVER_ENV
    assert all(isinstance(v, str) for v in data.values())
    assert data["MAX_BODY_BYTES"] == "8388608"  # not 8.388608e+06
    assert data["MODEL_BASE_PATH"] == "/mnt/store" and data["PORT"] == "9000" and data["GRPC_PORT"] == str(GRPC_PORT)
    with_facts = one(render("model.inputShape={28,28,1}", "model.classes={a,b}"), "ConfigMap")["data"]
    assert (with_facts["MODEL_INPUT_SHAPE"], with_facts["MODEL_CLASSES"]) == ("[28,28,1]", '["a","b"]')
    c = container(docs)
    assert c["env"][0] == {"name": "MODEL_VERSION", "value": "7"}
    assert [e["name"] for e in c["env"]].count("MODEL_VERSION") == 1
    assert c["ports"][0]["containerPort"] == 9000
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/mnt/store", "/tmp"}
    assert one(docs, "NetworkPolicy")["spec"]["ingress"][0]["ports"] == [
        {"port": 9000, "protocol": "TCP"},
        {"port": GRPC_PORT, "protocol": "TCP"},
    ]
    # Empty (the newest version): the entry alone, since the API server drops an empty value.
    assert container(render())["env"] == [{"name": "MODEL_VERSION"}]


def test_model_version_from_a_release_config_map():
    """How the generated overlays pin the version: an env entry still named MODEL_VERSION, read
    from a per-environment release ConfigMap (wins over model.version)."""
    c = container(render("model.versionConfigMap=mnist-release-blue", "model.version=3", "slot=blue"))
    assert c["env"][0] == {
        "name": "MODEL_VERSION",
        "valueFrom": {"configMapKeyRef": {"name": "mnist-release-blue", "key": "MODEL_VERSION"}},
    }
    assert [e["name"] for e in c["env"]].count("MODEL_VERSION") == 1


def test_a_model_image_is_mounted_read_only_and_replaces_the_claim():
    image = "registry.example.com/ml/models/mnist@" + DIGEST
    docs = render(
        "model.versionConfigMap=mnist-release", f"model.artifact.image={image}", "model.artifact.delivery=imageVolume"
    )
    spec = pod_spec(docs)
    assert "initContainers" not in spec
    assert spec["volumes"][0] == {
        "name": MODEL_IMAGE_VOLUME,
        "image": {"reference": image, "pullPolicy": "IfNotPresent"},
    }
    assert "persistentVolumeClaim" not in str(spec["volumes"])
    c = container(docs)
    assert {"name": MODEL_IMAGE_VOLUME, "mountPath": MODEL_IMAGE_MOUNT, "readOnly": True} in c["volumeMounts"]
    assert {"name": "MODEL_VERSION_PATH", "value": f"{MODEL_IMAGE_MOUNT}/model"} in c["env"]
    assert not [m for m in c["volumeMounts"] if m["name"] == "model-store"]


def test_a_model_image_through_an_init_container_fills_an_empty_dir_the_server_reads():
    """The default delivery, for any cluster: the server image pulls the pinned image by digest into
    an emptyDir (with the pull secret's credentials), the server mounts it read-only, and the
    NetworkPolicy lets out exactly what the pull needs."""
    image = "registry.example.com/ml/models/mnist@" + DIGEST
    docs = render(
        "model.versionConfigMap=mnist-release",
        f"model.artifact.image={image}",
        "model.artifact.pullSecret=model-registry",
        "networkPolicy.denyEgress=true",
        "networkPolicy.egressTo[0].ports[0].port=443",
        "networkPolicy.egressTo[0].ports[0].protocol=TCP",
    )
    spec = pod_spec(docs)
    (init,) = spec["initContainers"]
    assert init["name"] == FETCH_CONTAINER
    assert init["command"] == ["python", "-m", "services.fetch_model"]
    assert init["image"] == container(docs)["image"]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env == {
        MODEL_IMAGE_ENV: image,
        "MODEL_FETCH_DIR": MODEL_IMAGE_MOUNT,
        "REGISTRY_AUTH_FILE": "/var/run/secrets/model-registry/.dockerconfigjson",
    }
    assert init["securityContext"] == container(docs)["securityContext"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[MODEL_IMAGE_VOLUME] == {"name": MODEL_IMAGE_VOLUME, "emptyDir": {"sizeLimit": "1Gi"}}
    assert volumes["model-registry-auth"]["secret"]["secretName"] == "model-registry"  # pragma: allowlist secret
    mount = {"name": MODEL_IMAGE_VOLUME, "mountPath": MODEL_IMAGE_MOUNT}
    assert {**mount, "readOnly": True} in container(docs)["volumeMounts"] and mount in init["volumeMounts"]
    assert one(docs, "NetworkPolicy")["spec"]["egress"] == [{"ports": [{"port": 443, "protocol": "TCP"}]}]


@pytest.mark.parametrize(
    "sets, says",
    [
        (("model.artifact.image=registry.example.com/ml/models/mnist@" + DIGEST,), "model.artifact.image holds one"),
        (("model.version=1", "model.artifact.image=registry.example.com/ml/models/mnist:1"), "model/artifact/image"),
        (("model.version=1", "model.artifact.pullPolicy=Sometimes"), "model/artifact/pullPolicy"),
    ],
)
def test_a_model_image_needs_a_pinned_version_and_a_digest(sets, says):
    result = template(*sets)
    assert result.returncode != 0 and says in result.stderr, result.stderr


def test_an_init_container_that_could_not_reach_the_registry_is_refused():
    image = "registry.example.com/ml/models/mnist@" + DIGEST
    result = template("model.version=1", f"model.artifact.image={image}", "networkPolicy.denyEgress=true")
    assert result.returncode != 0 and "networkPolicy.egressTo" in result.stderr, result.stderr


def test_a_model_image_needs_a_cluster_with_image_volumes():
    sets = ["--set", "model.version=1", "--set", "model.artifact.image=registry.example.com/m@" + DIGEST]
    volume = [*sets, "--set", "model.artifact.delivery=imageVolume"]
    result = run_helm("template", RELEASE, str(CHART), "--kube-version", "1.30.0", *volume)
    assert result.returncode != 0 and "imageVolume needs Kubernetes 1.31 or newer" in result.stderr
    assert "use initContainer" in result.stderr
    assert run_helm("template", RELEASE, str(CHART), "--kube-version", "1.33.0", *volume).returncode == 0
    # The init container needs nothing of the cluster (but egress to the registry: denied by default).
    egress = ["--set", "networkPolicy.egressTo[0].ports[0].port=443"]
    assert run_helm("template", RELEASE, str(CHART), "--kube-version", "1.30.0", *sets, *egress).returncode == 0


def test_termination_grace_exceeds_drain_time():
    docs = render()
    data = one(docs, "ConfigMap")["data"]
    grace = pod_spec(docs)["terminationGracePeriodSeconds"]
    pre_stop = int(container(docs)["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert grace > int(data["GRACEFUL_TIMEOUT"]) + pre_stop
    sleep_docs = render("lifecycle.preStopMethod=sleep")
    assert container(sleep_docs)["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    exec_docs = render("lifecycle.preStopMethod=exec")
    assert container(exec_docs)["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "5"]}}
    assert "lifecycle" not in container(render("lifecycle.preStopSleepSeconds=0"))


def test_topology_spread_defaults():
    constraints = pod_spec(render())["topologySpreadConstraints"]
    assert [(c["topologyKey"], c["whenUnsatisfiable"]) for c in constraints] == [
        ("kubernetes.io/hostname", "DoNotSchedule"),
        ("topology.kubernetes.io/zone", "ScheduleAnyway"),
    ]
    assert all(c["matchLabelKeys"] == ["pod-template-hash"] for c in constraints)
    assert "topologySpreadConstraints" not in pod_spec(render("topologySpread.enabled=false"))


SERVING_PORTS = [{"port": 8080, "protocol": "TCP"}, {"port": GRPC_PORT, "protocol": "TCP"}]


def test_the_defaults_are_closed():
    """Installed without the generator: the serving ports admit only the release's namespace,
    the metrics port nobody, egress is denied, and gRPC reflection is off."""
    docs = render()
    policy = one(docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and "egress" not in policy
    assert policy["ingress"] == [{"ports": SERVING_PORTS, "from": [{"podSelector": {}}]}]
    assert one(docs, "ConfigMap")["data"]["GRPC_REFLECTION"] == "false"
    # Nobody at all: the Ingress type without rules denies everything.
    closed = one(render("networkPolicy.sameNamespace=false"), "NetworkPolicy")["spec"]
    assert "ingress" not in closed and closed["policyTypes"] == ["Ingress", "Egress"]


def test_network_policy_admits_each_peer_to_its_ports_only():
    prometheus = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    docs = render(
        "networkPolicy.sameNamespace=false",
        "networkPolicy.ingressFrom[0].podSelector.matchLabels.gateway=proxy",
        "networkPolicy.metricsFrom[0].podSelector.matchLabels.app\\.kubernetes\\.io/name=prometheus",
    )
    serving, metrics = one(docs, "NetworkPolicy")["spec"]["ingress"]
    assert serving == {"ports": SERVING_PORTS, "from": [{"podSelector": {"matchLabels": {"gateway": "proxy"}}}]}
    assert metrics == {"ports": [{"port": METRICS_PORT, "protocol": "TCP"}], "from": [prometheus]}
    service_ports = {p["name"]: p for p in one(docs, "Service")["spec"]["ports"]}
    assert service_ports["metrics"] == {
        "name": "metrics",
        "port": METRICS_PORT,
        "targetPort": "metrics",
        "protocol": "TCP",
        "appProtocol": "http",
    }
    assert "metrics" not in {p["name"] for p in one(render("service.metricsPort=0"), "Service")["spec"]["ports"]}


def test_every_port_differs():
    result = template("server.metricsPort=8080")
    assert result.returncode != 0 and "server.metricsPort (8080) must all differ" in result.stderr, result.stderr


def test_grpc_port_service_and_probe_option():
    docs = render("server.grpcPort=9500", "service.grpcPort=8600")
    ports = {p["name"]: p for p in one(docs, "Service")["spec"]["ports"]}
    assert ports["grpc"] == {
        "name": "grpc",
        "port": 8600,
        "targetPort": "grpc",
        "protocol": "TCP",
        "appProtocol": "kubernetes.io/h2c",
    }
    assert {"name": "grpc", "containerPort": 9500, "protocol": "TCP"} in container(docs)["ports"]
    assert "httpGet" in container(docs)["readinessProbe"]
    probed = container(render("probes.readiness.grpc=true"))
    assert probed["readinessProbe"]["grpc"] == {"port": GRPC_PORT} and "httpGet" not in probed["readinessProbe"]
    assert "httpGet" in probed["livenessProbe"]  # liveness stays HTTP: it answers while a model loads
    drain = container(render("lifecycle.preStopMethod=drain"))["lifecycle"]["preStop"]
    assert drain == {"exec": {"command": ["python", "-m", "services.inference.drain", "--wait", "5"]}}
    policy = one(render(values="production.yaml"), "NetworkPolicy")["spec"]
    # Egress denied by listing the type without rules (no `egress: []`, which the API drops).
    assert policy["policyTypes"] == ["Ingress", "Egress"] and "egress" not in policy
    serving, metrics = policy["ingress"]
    assert serving["ports"] == SERVING_PORTS and len(serving["from"]) == 1  # the gateway's proxies alone
    assert metrics["ports"] == [{"port": METRICS_PORT, "protocol": "TCP"}] and len(metrics["from"]) == 1


# --- image and version label --------------------------------------------------------------------


def test_digest_wins_over_tag():
    docs = render("image.repository=reg.example/srv", "image.tag=1.2.3", f"image.digest={DIGEST}")
    assert container(docs)["image"] == f"reg.example/srv@{DIGEST}"
    assert one(docs, "Deployment")["metadata"]["labels"]["app.kubernetes.io/version"] == "1.2.3"


def test_digest_only_version_label_is_the_short_digest():
    docs = render("image.tag=", f"image.digest={DIGEST}")
    assert container(docs)["image"] == f"ml-gitops/inference-server@{DIGEST}"
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/version"] == "sha256-" + DIGEST[7:19]


def test_long_tag_gives_a_valid_version_label():
    tag = "v1.2.3-" + "x" * 70 + "_"
    docs = render(f"image.tag={tag}")
    version = one(docs, "Deployment")["metadata"]["labels"]["app.kubernetes.io/version"]
    assert matches(LABEL_VALUE, version) and tag.startswith(version)
    assert container(docs)["image"].endswith(":" + tag)


# --- toggles --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting,kind",
    [
        ("deployment.enabled=false", "Deployment"),
        ("service.enabled=false", "Service"),
        ("serviceAccount.create=false", "ServiceAccount"),
        ("autoscaling.enabled=false", "HorizontalPodAutoscaler"),
        ("podDisruptionBudget.enabled=false", "PodDisruptionBudget"),
        ("networkPolicy.enabled=false", "NetworkPolicy"),
        ("configMap.create=false", "ConfigMap"),
    ],
)
def test_each_resource_toggles_off(setting, kind):
    docs = render(setting)
    assert {d["kind"] for d in docs} == ALL_KINDS - {kind}
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_everything_off_renders_nothing():
    docs = render(
        "deployment.enabled=false",
        "service.enabled=false",
        "serviceAccount.create=false",
        "autoscaling.enabled=false",
        "podDisruptionBudget.enabled=false",
        "networkPolicy.enabled=false",
        "configMap.create=false",
    )
    assert docs == []


def test_hpa_owns_replicas():
    assert "replicas" not in one(render(), "Deployment")["spec"]
    docs = render("autoscaling.enabled=false", "replicaCount=3")
    assert one(docs, "Deployment")["spec"]["replicas"] == 3
    hpa = one(render(values="production.yaml"), "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu", "memory"]
    assert hpa["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 300}}


def test_service_account_and_config_map_references_when_not_created():
    docs = render("serviceAccount.create=false")
    assert pod_spec(docs)["serviceAccountName"] == "default"
    docs = render("serviceAccount.create=false", "serviceAccount.name=shared-sa")
    assert pod_spec(docs)["serviceAccountName"] == "shared-sa"
    docs = render("configMap.create=false", "configMap.name=settings")
    assert container(docs)["envFrom"] == [{"configMapRef": {"name": "settings"}}]
    assert "checksum/config" not in one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]


def test_pdb_min_available():
    pdb = one(render(values="production.yaml"), "PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] == "50%" and "maxUnavailable" not in pdb
    pdb = one(render(), "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
    # What the generator passes for `minAvailable` in platform.yaml: it wins over the default.
    pdb = one(render("podDisruptionBudget.minAvailable=2"), "PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] == 2 and "maxUnavailable" not in pdb
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


# --- checksum and determinism ---------------------------------------------------------------------


def checksum(*sets: str) -> str:
    return one(render(*sets), "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def test_checksum_rolls_pods_when_the_config_changes():
    base = checksum()
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert checksum("server.workers=3") != base
    assert checksum("model.backend=tensorflow") != base
    assert checksum("server.logLevel=debug") != base
    # Not config: the image and the model version roll pods by themselves, not through the checksum.
    assert checksum("image.tag=9.9.9") == base
    assert checksum("model.version=4") == base


@pytest.mark.parametrize("values", [None, "production.yaml"])
def test_render_is_byte_deterministic(values):
    args = ["template", RELEASE, str(CHART)] + (["--values", f"tests/chart/values/{values}"] if values else [])
    outputs = {run_helm(*args, "--set", "slot=blue").stdout for _ in range(3)}
    assert len(outputs) == 1 and outputs.pop()


def test_no_helm_hooks_or_test_templates():
    assert not (CHART / "templates" / "tests").exists()
    for path in (CHART / "templates").rglob("*"):
        assert "helm.sh/hook" not in path.read_text(), path
    for values in (None, "production.yaml"):
        out = template(values=values).stdout
        assert "helm.sh/hook" not in out


def test_optional_chart_label_and_extra_env():
    for doc in render("chartLabel=true"):
        assert doc["metadata"]["labels"]["helm.sh/chart"] == f"inference-service-{CHART_VERSION}"
    env = container(render(values="production.yaml"))["env"]
    assert env == [{"name": "MODEL_VERSION", "value": "3"}, {"name": "PYTHONFAULTHANDLER", "value": "1"}]
