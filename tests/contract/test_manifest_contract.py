"""The manifests and the programs agree: for every overlay, the rendered training Job's and
inference Deployment's containers run here as local processes, exactly as declared. A
serve-only overlay (no training Job) serves what a training overlay's Jobs published.

What is taken from the rendered manifests, not from the code: the command and args, the env
(literal values, ``envFrom`` ConfigMaps and ``configMapKeyRef``s resolved against the same
overlay), the container port, the volume mounts (each mounted path mapped to a temporary
directory), the probes (path and port) and the Service's targetPort. What is mapped because
this is not a container: ``/app`` is the repository (the images' WORKDIR, where the
Dockerfiles copy ``services/``), the Python on PATH is the venv's, and the declared port is
moved to a free one (after checking that the server's ``PORT`` equals the declared
containerPort, which is the contract that matters), and ``MODEL_DIGEST``, after checking that it
is the committed model card's, becomes the digest of the version trained here (what ``make
register`` and ``make pin-model`` would pin for these bytes). Likewise the registry: the training
Job pushes its model image to a real registry on loopback instead of the one platform.yaml names,
and a serve-only server's init container, after checking that its pinned image is the card's,
pulls the image of the version trained here from there, by the digest computed from the files:
it exists only if the Job pushed exactly those bytes. The Job's own ``MODEL_IMAGE`` (the committed
pin, from which it would fetch the version instead of training it) names an image no registry here
holds: after checking that it is the card's, the Job runs as the training request that produced it,
and a second test runs it with the pushed image to prove the fetch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from loopback import free_port, stop
from oci_registry_server import running_registry
from prometheus_client.parser import text_string_to_metric_families
from promql_names import metric_names, monitoring_expressions

from generator.conventions import DIGEST_KEY
from generator.paths import REPO_ROOT
from generator.registry import cards
from generator.tools import render_overlay
from generator.validate.render import NOT_ENVIRONMENTS
from services import artifacts, model_image

OVERLAYS = sorted(
    p.parent.name
    for p in (REPO_ROOT / "overlays").glob("*/kustomization.yaml")
    if p.parent.name not in NOT_ENVIRONMENTS
)
IMAGE_WORKDIR = "/app"
VENV_BIN = Path(sys.executable).parent
DIGIT = [[[0.0] for _ in range(28)] for _ in range(28)]
#: Series the rules read that the cluster provides, not the server (docs/operating.md): the
#: scrape's own ``up`` and kube-state-metrics' Deployment replicas.
CLUSTER_SERIES = {"up", "kube_deployment_status_replicas_available", "kube_deployment_spec_replicas"}


def rendered(overlay: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(render_overlay(REPO_ROOT / "overlays" / overlay)) if d]


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def container_env(container: dict, objects: list[dict], mounts: dict[str, Path]) -> dict[str, str]:
    """The container's environment as the kubelet would build it, with mounted paths mapped."""
    config_maps = by_kind(objects, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]]["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["configMapKeyRef"]
            data = config_maps[ref["name"]]["data"]
            if ref["key"] not in data and ref.get("optional"):
                continue  # an optional key the ConfigMap lacks: the kubelet leaves the variable unset
            env[item["name"]] = data[ref["key"]]
    for name, value in env.items():
        for mount_path, local in mounts.items():
            if value == mount_path or value.startswith(mount_path + "/"):
                env[name] = str(local) + value[len(mount_path) :]
    return env


def local_mounts(container: dict, tmp: Path, shared: dict[str, Path]) -> dict[str, Path]:
    """Each volumeMount's path -> a local directory (the model store is shared between programs)."""
    mounts = {}
    for mount in container.get("volumeMounts", []):
        local = shared.get(mount["name"]) or tmp / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        mounts[mount["mountPath"]] = local
    return mounts


def local_command(container: dict) -> list[str]:
    argv = container.get("command", []) + container.get("args", [])
    assert argv, f"container {container['name']} relies on the image's entrypoint: declare the command"
    program = VENV_BIN / argv[0]
    assert program.exists(), f"{argv[0]} is not installed in the image's requirements"
    return [str(program)] + [arg.replace(IMAGE_WORKDIR + "/", str(REPO_ROOT) + "/") for arg in argv[1:]]


def base_env(tmp: Path) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "LANG", "LC_ALL", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "SYSTEMROOT")
    }
    # The containers run with the image's WORKDIR on sys.path; /tmp is their emptyDir.
    return {**keep, "PYTHONPATH": str(REPO_ROOT), "TMPDIR": str(tmp / "tmp-dir"), "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def model_store(tmp_path_factory) -> Path:
    """The model store volume every overlay's Job writes and every server reads."""
    return tmp_path_factory.mktemp("model-store")


def run_training_job(overlay: str, objects: list[dict], store: Path, registry: str, tmp: Path) -> int:
    """Run the overlay's training Job container, which pushes to the loopback ``registry``; return
    the version it was told to produce."""
    jobs = [job for job in by_kind(objects, "Job").values()]
    assert jobs, f"{overlay} renders no training Job"
    versions = set()
    for job in jobs:
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        mounts = local_mounts(container, tmp / job["metadata"]["name"], {"model-store": store})
        env = {**base_env(tmp), **container_env(container, objects, mounts)}
        repository = env["MODEL_ARTIFACT_REPOSITORY"]
        assert repository.endswith(f"/{env['MODEL_NAME']}"), f"{overlay}: pushes to {repository}"
        card = cards.read_card(REPO_ROOT, env["MODEL_NAME"], env["MODEL_VERSION"])
        assert card.artifact is not None and env.pop("MODEL_IMAGE") == "@".join(card.artifact), overlay
        env["MODEL_ARTIFACT_REPOSITORY"] = f"{registry}/ml/models/{env['MODEL_NAME']}"
        env["MODEL_REGISTRY_PLAIN_HTTP"] = "1"
        (tmp / "tmp-dir").mkdir(exist_ok=True)
        result = subprocess.run(
            local_command(container),
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=job["spec"]["activeDeadlineSeconds"],
        )
        assert result.returncode == 0, f"{overlay} Job {job['metadata']['name']}:\n{result.stderr[-3000:]}"
        version = int(env["MODEL_VERSION"])
        metadata = json.loads((store / env["MODEL_NAME"] / str(version) / "metadata.json").read_text())
        assert metadata["version"] == version
        versions.add(version)
    return max(versions)


def monitoring_metric_names(objects: list[dict]) -> tuple[set[str], set[str]]:
    """(names the rules record, every metric name the rules and dashboards query)."""
    recorded = {
        rule["record"]
        for o in by_kind(objects, "PrometheusRule").values()
        for group in o["spec"]["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    named = {name for _, expr in monitoring_expressions(objects) for name in metric_names(expr)}
    return recorded, named


def scraped_port(objects: list[dict], container: dict) -> int:
    """The container port Prometheus scrapes: the ServiceMonitor's endpoint names a port of the
    Service it selects, whose targetPort names the container's."""
    (monitor,) = [o for o in objects if o["kind"] == "ServiceMonitor"]
    (endpoint,) = monitor["spec"]["endpoints"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    (service,) = [
        o for o in objects if o["kind"] == "Service" and selector.items() <= o["metadata"].get("labels", {}).items()
    ]
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    return resolve_port(container, port["targetPort"])


def resolve_port(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A real OCI registry on loopback (host:port) for the model images serve-only servers pull."""
    with running_registry(tmp_path_factory.mktemp("registry")) as host:
        yield host


def loopback_image(store: Path, model: str, version: int, registry: str) -> str:
    """The reference, on the loopback registry, of the model image of the version trained here."""
    return f"{registry}/ml/models/{model}@{model_image.image_digest(store / model / str(version), model, version)}"


def run_init_containers(overlay: str, objects: list[dict], pod: dict, store: Path, registry: str, tmp: Path) -> None:
    """Run the pod's init containers to completion, in order, as declared; the model image they
    pull is the card's in git, pulled here as the image of the version trained here."""
    for container in pod.get("initContainers", []):
        mounts = local_mounts(container, tmp, {})
        env = {**base_env(tmp), **container_env(container, objects, mounts)}
        if "MODEL_IMAGE" in env:
            model, version = pinned_version(objects, pod)
            card = cards.read_card(REPO_ROOT, model, version)
            assert card.artifact is not None and env["MODEL_IMAGE"] == "@".join(card.artifact), overlay
            env["MODEL_IMAGE"] = loopback_image(store, model, int(version), registry)
            env["MODEL_REGISTRY_PLAIN_HTTP"] = "1"
        (tmp / "tmp-dir").mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            local_command(container), cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{overlay} init container {container['name']}:\n{result.stderr[-3000:]}"


def pinned_version(objects: list[dict], pod: dict) -> tuple[str, str]:
    """(MODEL_NAME, MODEL_VERSION) of the pod's server container, as its ConfigMaps set them."""
    (server,) = [c for c in pod["containers"] if c["name"] == "server"]
    env = container_env(server, objects, {})
    return env["MODEL_NAME"], env["MODEL_VERSION"]


def serve_deployment(overlay: str, objects: list[dict], deployment: dict, store: Path, tmp: Path, registry: str):
    """Start the Deployment's server container locally, after its init containers; return
    (process, container, env, port map)."""
    pod = deployment["spec"]["template"]["spec"]
    run_init_containers(overlay, objects, pod, store, registry, tmp / deployment["metadata"]["name"])
    (container,) = [c for c in pod["containers"] if c["name"] == "server"]
    mounts = local_mounts(container, tmp / deployment["metadata"]["name"], {"model-store": store})
    env = {**base_env(tmp), **container_env(container, objects, mounts)}
    if DIGEST_KEY in env:
        model, version = env["MODEL_NAME"], env["MODEL_VERSION"]
        assert env[DIGEST_KEY] == cards.read_card(REPO_ROOT, model, version).digest, f"{overlay}: not the card's"
        env[DIGEST_KEY] = artifacts.digest_directory(store / model / version)
    (tmp / "tmp-dir").mkdir(exist_ok=True)
    local_ports = {}
    for variable, name in (("PORT", "http"), ("METRICS_PORT", "metrics")):
        declared = resolve_port(container, name)
        assert int(env[variable]) == declared, (
            f"{overlay}: server {variable} {env[variable]} != containerPort {declared}"
        )
        local_ports[declared] = free_port()
        env[variable] = str(local_ports[declared])
    process = subprocess.Popen(
        local_command(container),
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / f"{deployment['metadata']['name']}.log", "w"),
        start_new_session=True,
    )
    return process, container, env, local_ports


def probe(container: dict, name: str, ports: dict[int, int]) -> requests.Response:
    http = container[name]["httpGet"]
    port = ports[resolve_port(container, http["port"])]
    return requests.get(f"http://127.0.0.1:{port}{http['path']}", timeout=5)


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last.status_code == 200:
                return last
        except requests.ConnectionError as exc:
            last = exc
        time.sleep(0.25)
    pytest.fail(f"{what}: no 200 within {timeout}s (last: {getattr(last, 'status_code', last)})")


@pytest.mark.slow
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_run_as_declared(overlay, model_store, registry, tmp_path):
    objects = rendered(overlay)
    if by_kind(objects, "Job"):
        version = run_training_job(overlay, objects, model_store, registry, tmp_path)
    else:  # serve-only: it serves what a training overlay published (its Jobs skip what exists)
        trainer = next(o for o in OVERLAYS if by_kind(rendered(o), "Job"))
        version = run_training_job(trainer, rendered(trainer), model_store, registry, tmp_path)
    services = by_kind(objects, "Service")
    deployments = [
        d
        for d in by_kind(objects, "Deployment").values()
        if any(c["name"] == "server" for c in d["spec"]["template"]["spec"]["containers"])
    ]
    assert deployments
    for deployment in deployments:
        process, container, env, ports = serve_deployment(overlay, objects, deployment, model_store, tmp_path, registry)
        model, pinned = env["MODEL_NAME"], int(env["MODEL_VERSION"])
        assert pinned <= version, f"{overlay}: serves version {pinned}, but its Jobs train only up to {version}"
        try:
            startup = container["startupProbe"]
            budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
            wait_for(lambda c=container, p=ports: probe(c, "startupProbe", p), budget, f"{overlay} startupProbe")
            wait_for(lambda c=container, p=ports: probe(c, "readinessProbe", p), 60, f"{overlay} readinessProbe")
            assert probe(container, "livenessProbe", ports).status_code == 200
            pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
            selecting = [
                s
                for s in services.values()
                if s["spec"].get("selector") and s["spec"]["selector"].items() <= pod_labels.items()
            ]
            assert selecting, f"{overlay}: no Service selects {deployment['metadata']['name']}"
            for service in selecting:
                target = service["spec"]["ports"][0]["targetPort"]
                port = ports[resolve_port(container, target)]
                answer = requests.post(
                    f"http://127.0.0.1:{port}/v1/models/{model}:predict", json={"instances": [DIGIT]}, timeout=10
                )
                assert answer.status_code == 200, answer.text
                assert len(answer.json()["predictions"][0]) == 10
            scraped = requests.get(f"http://127.0.0.1:{ports[scraped_port(objects, container)]}/metrics", timeout=5)
            assert scraped.status_code == 200, f"{overlay}: the ServiceMonitor's port answers {scraped.status_code}"
            serving = requests.get(f"http://127.0.0.1:{ports[resolve_port(container, 'http')]}/metrics", timeout=5)
            assert serving.status_code == 404, f"{overlay}: /metrics answers on the serving port"
            exported = {
                sample.name for family in text_string_to_metric_families(scraped.text) for sample in family.samples
            }
            recorded, named = monitoring_metric_names(objects)
            assert named, f"{overlay} renders no PrometheusRule or dashboard"
            # Every series the rules and dashboards read is scraped, even a counter that never
            # fired (load failures): the server creates the ones it knows at start at 0.
            missing = named - exported - recorded - CLUSTER_SERIES
            assert not missing, f"{overlay}: not exported by the server: {missing}"
            status = requests.get(
                f"http://127.0.0.1:{ports[resolve_port(container, 'http')]}/v1/models/{model}", timeout=5
            ).json()
            served = {int(v["version"]) for v in status["model_version_status"] if v["state"] == "AVAILABLE"}
            assert served == {pinned}, f"{overlay}: pinned {pinned}, serving {status}"
        finally:
            stop(process)


@pytest.mark.slow
def test_a_training_job_fetches_a_pinned_version_instead_of_training_it(model_store, registry, tmp_path):
    """The dev training Job, as declared, with its pinned model image on the loopback registry and
    an empty store: it publishes the pinned bytes from the image (a version is trained once), and
    a digest no registry holds publishes nothing (exit 5)."""
    objects = rendered("dev")
    version = run_training_job("dev", objects, model_store, registry, tmp_path / "trained")
    [job] = by_kind(objects, "Job").values()
    (container,) = job["spec"]["template"]["spec"]["containers"]
    for name, digest, code in (
        ("pinned", model_image.image_digest(model_store / "mnist" / str(version), "mnist", version), 0),
        ("never-pushed", "sha256:" + "ab" * 32, 5),
    ):
        store = tmp_path / name / "store"
        mounts = local_mounts(container, tmp_path / name, {"model-store": store})
        env = {**base_env(tmp_path / name), **container_env(container, objects, mounts)}
        env["MODEL_IMAGE"] = f"{registry}/ml/models/mnist@{digest}"
        env["MODEL_REGISTRY_PLAIN_HTTP"] = "1"
        (tmp_path / name / "tmp-dir").mkdir(parents=True, exist_ok=True)
        result = subprocess.run(local_command(container), cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        assert result.returncode == code, result.stderr[-2000:]
        assert "epoch" not in result.stderr  # never trained
        published = store / "mnist" / str(version)
        if code == 0:
            assert "fetched mnist version" in result.stderr
            assert artifacts.digest_directory(published) == artifacts.digest_directory(
                model_store / "mnist" / str(version)
            )
        else:
            assert not published.exists() and "the registry failed" in result.stderr
