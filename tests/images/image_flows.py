"""What the image tests do with a rendered workload: run a training Job to completion, or bring a
server Deployment's pod (its init containers, then its server container) up through its probes,
always removing exactly what was started.

The substitutions, all here and each named by a constant: what the rendered manifests pin stands
for reviewed bytes in registries the test cannot reach, so the test puts in their place the
version it trained itself, and nothing else:

- ``SHORT_TRAINING``: a Job trains briefly.
- ``DIGEST_ENV``: the server's ``MODEL_DIGEST`` is the digest of the version the test trained.
- ``ARTIFACT_REPOSITORY_ENV`` (with ``PLAIN_HTTP_ENV``): a Job's trainer pushes the version it
  published as its model image to ``MODEL_ARTIFACT_REPOSITORY`` (rendered as
  ``<platform.yaml modelArtifacts.repository>/<MODEL_NAME>``, checked first), which becomes the
  same repository path on the session's loopback registry, over plain HTTP; the trainer container
  runs on the host's network to reach it (``LOOPBACK_NETWORK``; the Job's NetworkPolicy, which
  lets it reach only DNS and the registry's port, is not enforced there).
- ``MODEL_IMAGE_ENV`` (with ``PLAIN_HTTP_ENV``): an init container's pinned model image
  (``registry.example.com/ml/models/<model>@sha256:<the card's image digest>``) becomes the same
  repository on the session's loopback registry, by the digest of the image the training Job
  pushed there: :func:`services.model_image.image_digest` of the trained files, which the
  registry holds only if the Job pushed exactly those bytes (:meth:`ModelRegistry.trained_image`;
  the harness pushes only the wrong images the failure tests need, under other tags), over
  plain HTTP; that init container runs on the host's network to reach it (``LOOPBACK_NETWORK``).
- ``MODEL_IMAGE_ENV`` of a Job's trainer: the overlay pins the version's model image (checked
  first to be its card's ``artifact``, registry/<model>/<version>.yaml: ``repository@digest``),
  from which the trainer fetches the version instead of training it; that image is in no registry
  here, so the Job runs as the training request that produced it: the same repository at
  :data:`services.model_image.UNPINNED_DIGEST` (``TRAINING_REQUEST``), and it trains. The test
  that proves the fetch gives it instead the image a first run pushed to the loopback registry
  (same repository path, by digest: :meth:`ModelRegistry.trained_image`), or a digest never pushed.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml
from oci_registry_server import blob_data
from pod_run import InitContainerFailed, Pod
from pod_spec import PodWorkload, check_runs_as_non_root, resolve_env

from generator.paths import REPO_ROOT
from generator.tools.images.engine import Engine
from services import artifacts, model_image, registry_client

#: The one addition to the Job's env: a short training (the test proves the image trains and
#: publishes, not the model's accuracy). Everything else is what the manifest declares.
SHORT_TRAINING = {"TRAINING_EPOCHS": "1", "TRAINING_MAX_EXAMPLES": "600"}
#: The server env the image test sets beside the manifest's: the digest of the version the test
#: trained, which is what ``make register`` then ``make pin-model`` pin for those bytes (the
#: overlay pins the digest of the committed card, registry/<model>/<version>.yaml: other bytes).
DIGEST_ENV = "MODEL_DIGEST"
#: The init container env (services/fetch_model.py) naming the model image a pod pulls by digest.
#: The overlay pins the image of the committed card's bytes in registry.example.com; the test sets
#: the same repository on its loopback registry, at the digest of the image its training Job pushed.
#: Also the trainer's (services/training/settings.py): the pinned version's image, fetched
#: instead of trained; the test runs the Job as its training request (TRAINING_REQUEST).
MODEL_IMAGE_ENV = "MODEL_IMAGE"
#: The digest a training Job's MODEL_IMAGE_ENV gets in place of its pin: the unpinned placeholder,
#: with which the trainer trains (services.model_image.is_pinned), as it did for the pinned version.
TRAINING_REQUEST = model_image.UNPINNED_DIGEST
#: The trainer env (services/training/settings.py) naming the repository a Job pushes the version
#: it published to, as ``<repository>:<version>``. The overlay names the repository in
#: registry.example.com; the test sets the same repository path on its loopback registry.
ARTIFACT_REPOSITORY_ENV = "MODEL_ARTIFACT_REPOSITORY"
#: Added beside either: the loopback registry speaks plain HTTP (the chart's model.artifact.plainHTTP).
PLAIN_HTTP_ENV = {"MODEL_REGISTRY_PLAIN_HTTP": "1"}
#: The network of a container pushing to or pulling from the loopback registry: the host's (its loopback).
LOOPBACK_NETWORK = "host"
FS_GROUP_MODE = 0o2775  # what a kubelet gives a volume for fsGroup: group-owned, setgid, group-writable


def model_store(path: Path, workload: PodWorkload) -> Path:
    """A host directory standing for the model-store claim, prepared as fsGroup prepares a volume.

    As root (as here and in .ci/run) the directory gets the fsGroup and the setgid bit, exactly as a
    kubelet does; a non-root test run (Docker users on a CI runner) cannot chown, and opens the
    directory to every user instead.
    """
    path.mkdir(parents=True, exist_ok=True)
    fs_group = workload.pod["spec"].get("securityContext", {}).get("fsGroup")
    if fs_group is not None:
        try:
            os.chown(path, -1, int(fs_group))
            path.chmod(FS_GROUP_MODE)
        except PermissionError:
            path.chmod(0o777)
    return path


def claims_of(workload: PodWorkload, store: Path) -> dict[str, Path]:
    """Every claim the pod mounts maps to the overlay's one model store (the chart has one claim)."""
    return {
        volume["persistentVolumeClaim"]["claimName"]: store
        for volume in workload.pod["spec"].get("volumes", [])
        if "persistentVolumeClaim" in volume
    }


@dataclass
class JobOutcome:
    """How one training Job's container ended."""

    workload: PodWorkload
    exit_code: int | None
    log: str
    failure: str
    env: dict[str, str]


def _check_non_root(workload: PodWorkload, image_user: str) -> None:
    for container in workload.containers():
        check_runs_as_non_root(workload, image_user, container)


def run_job(
    engine: Engine,
    workload: PodWorkload,
    image: str,
    image_user: str,
    store: Path,
    scratch: Path,
    label: str,
    model_registry: ModelRegistry,
    *,
    model_image: str = "",
) -> JobOutcome:
    """Run a Job's pod to completion (its init containers, then its container, all within
    activeDeadlineSeconds) and collect its outcome. Its trainer pushes the version it published
    to ``model_registry`` (the substitution of ARTIFACT_REPOSITORY_ENV). It trains, as the request
    that produced its pinned model image (TRAINING_REQUEST), or, given ``model_image`` (that image
    on ``model_registry``, by digest), fetches the version from there."""
    _check_non_root(workload, image_user)
    extra = {
        **SHORT_TRAINING,
        **artifact_repository_env(workload, model_registry.host),
        **job_model_image_env(workload, model_image),
    }
    pod = Pod(engine, workload, image, claims_of(workload, store), scratch, label)
    deadline = float(workload.spec.get("activeDeadlineSeconds", 0) or 1800)
    started = time.monotonic()
    try:
        try:
            pod.run_init_containers(deadline)
        except InitContainerFailed as exc:
            return JobOutcome(workload, exc.exit_code, exc.log, str(exc), resolve_env(workload, extra))
        container = pod.start(extra, LOOPBACK_NETWORK)
        remaining = max(1.0, deadline - (time.monotonic() - started))
        code = container.wait(remaining) if not container.start_error else container.wait(5)
        failure = "" if code == 0 else container.failure(f"Job {workload.name} ended with exit code {code}")
        return JobOutcome(workload, code, container.logs(), failure, container.plan.env)
    finally:
        pod.remove()


@contextlib.contextmanager
def ready_server(
    engine: Engine,
    workload: PodWorkload,
    image: str,
    image_user: str,
    store: Path,
    scratch: Path,
    label: str,
    progress_deadline: float,
    *,
    pin_trained_digest: bool = True,
    probes: tuple[str, ...] = ("startup", "liveness", "readiness"),
    model_registry: ModelRegistry | None = None,
    model_image: str = "",
):
    """A server pod started as the Deployment declares: its init containers run to completion
    (InitContainerFailed if one does not), then its server container, through the named probes.

    ``MODEL_DIGEST``, where the Deployment reads one, is the digest of the version in ``store``
    (``pin_trained_digest``, see DIGEST_ENV); False keeps the overlay's own pin. A pod that pulls a
    model image (MODEL_IMAGE_ENV) pulls ``model_image`` instead of its pin, or else the version
    in ``store`` as its training Job pushed it to ``model_registry`` (:meth:`ModelRegistry.trained_image`)."""
    _check_non_root(workload, image_user)
    digest = trained_digest(store, workload) if pin_trained_digest else ""
    extra = {DIGEST_ENV: digest} if digest else None
    init_env, networks = {}, {}
    pin = model_image_pin(workload)
    assert pin or not model_image, f"{workload.name} pulls no model image, so it cannot pull {model_image}"
    if pin:
        if not model_image:
            assert model_registry is not None, f"{workload.name} pulls {pin}: give the test's model_registry"
            model_image = model_registry.trained_image(store, workload)
        init_env = model_image_env(workload, model_image)
        networks = dict.fromkeys(init_env, LOOPBACK_NETWORK)
    pod = Pod(engine, workload, image, claims_of(workload, store), scratch, label)
    try:
        pod.run_init_containers(progress_deadline, init_env, networks)
        container = pod.start(extra)
        spec = workload.container
        for kind in probes:
            if f"{kind}Probe" in spec:
                container.await_probe(kind, spec[f"{kind}Probe"], ceiling_seconds=progress_deadline)
        pod.check_size_limits("once started")
        yield container
    finally:
        pod.remove()


def refused_for_its_digest(server, what: str, timeout: float = 60) -> str:
    """Wait until a started server says why it is not ready, "digest mismatch" (its version loads
    in the background, after the startup probe), failing as soon as it is ready: ``what`` says what
    that would mean. Returns the reason."""
    base = f"http://127.0.0.1:{server.host_port('http')}"
    deadline = time.monotonic() + timeout
    while True:
        ready = requests.get(f"{base}/v2/health/ready", timeout=10)
        assert ready.status_code == 503, server.failure(what)
        reason = str(ready.json().get("reason", ""))
        if "digest mismatch" in reason or time.monotonic() > deadline:
            return reason
        time.sleep(0.5)


def trained_digest(store: Path, workload: PodWorkload) -> str:
    """The digest of the version the workload pins, as published in ``store`` ("" when absent)."""
    env = resolve_env(workload)
    version_dir = store / env.get("MODEL_NAME", "") / env.get("MODEL_VERSION", "")
    return artifacts.digest_directory(version_dir) if (version_dir / "metadata.json").is_file() else ""


def image_user(engine: Engine, image: str) -> str:
    """The image's configured USER."""
    return engine.inspect_image(image).get("Config", {}).get("User", "")


def published_version(store: Path, model: str, version: str) -> dict:
    """The metadata.json of a published version (it exists only once the version is complete)."""
    return json.loads((store / model / version / "metadata.json").read_text())


# --- model images: the substitutions of ARTIFACT_REPOSITORY_ENV and MODEL_IMAGE_ENV ---------------


def declared_artifact_repository(model: str) -> str:
    """Where platform.yaml says a model's versions are pushed: ``<modelArtifacts.repository>/<model>``
    (read off platform.yaml itself, not through the generator that rendered the Job)."""
    platform = yaml.safe_load((REPO_ROOT / "platform.yaml").read_text())
    return f"{platform['modelArtifacts']['repository']}/{model}"


def artifact_repository_env(workload: PodWorkload, registry_host: str) -> dict[str, str]:
    """The env that points a Job's trainer, which pushes to the repository platform.yaml names
    (checked here), at the same repository path on the registry ``registry_host``, over plain HTTP."""
    env = resolve_env(workload)
    declared, expected = env.get(ARTIFACT_REPOSITORY_ENV), declared_artifact_repository(env["MODEL_NAME"])
    assert declared == expected, f"{workload.name}: {ARTIFACT_REPOSITORY_ENV}={declared!r}, not {expected!r}"
    repository = registry_client.parse_reference(declared).repository
    return {ARTIFACT_REPOSITORY_ENV: f"{registry_host}/{repository}", **PLAIN_HTTP_ENV}


def card_artifact(model: str, version: str) -> str:
    """The model image the committed card of ``model`` ``version`` records,
    ``<artifact.repository>@<artifact.digest>`` (read off registry/<model>/<version>.yaml itself,
    not through the generator that rendered the pin); "" when the card records none."""
    path = REPO_ROOT / "registry" / model / f"{version}.yaml"
    assert path.is_file(), f"{path.relative_to(REPO_ROOT)}: no card for {model} version {version}"
    artifact = yaml.safe_load(path.read_text()).get("artifact") or {}
    return f"{artifact['repository']}@{artifact['digest']}" if artifact else ""


def job_model_image_pin(workload: PodWorkload) -> str:
    """The model image a Job's trainer fetches its pinned version from (MODEL_IMAGE_ENV), checked
    to be the card's artifact of that version; "" when the Job names none (it trains)."""
    env = resolve_env(workload)
    pin = env.get(MODEL_IMAGE_ENV, "")
    if pin:
        card = card_artifact(env["MODEL_NAME"], env["MODEL_VERSION"])
        assert pin == card, f"{workload.name}: {MODEL_IMAGE_ENV}={pin!r}, not the card's artifact {card!r}"
    return pin


def job_model_image_env(workload: PodWorkload, reference: str = "") -> dict[str, str]:
    """The env that runs a Job whose trainer names a pinned model image as the training request
    that produced it (the same repository at TRAINING_REQUEST), or, given ``reference`` (the same
    repository path on another registry, by digest), that fetches the version from there."""
    pin = job_model_image_pin(workload)
    if not pin:
        assert not reference, f"{workload.name} names no {MODEL_IMAGE_ENV}, so it cannot fetch {reference}"
        return {}
    if not reference:
        return {MODEL_IMAGE_ENV: f"{pin.rsplit('@', 1)[0]}@{TRAINING_REQUEST}"}
    ours, theirs = registry_client.parse_reference(reference), registry_client.parse_reference(pin)
    assert ours.repository == theirs.repository and model_image.is_pinned(reference), (
        f"{workload.name}: {reference} does not stand for {pin} (same repository path, by digest)"
    )
    return {MODEL_IMAGE_ENV: reference}


def model_image_pin(workload: PodWorkload) -> str:
    """The model image the pod's init containers pull (their MODEL_IMAGE_ENV), "" if none does."""
    pins = {
        env[MODEL_IMAGE_ENV]
        for env in (resolve_env(workload, container=c) for c in workload.init_containers)
        if env.get(MODEL_IMAGE_ENV)
    }
    assert len(pins) <= 1, f"{workload.name}: init containers pull different model images {sorted(pins)}"
    return pins.pop() if pins else ""


def model_image_env(workload: PodWorkload, reference: str) -> dict[str, dict[str, str]]:
    """By init container name, the env that replaces the pod's pinned model image with
    ``reference`` (same repository path, another registry and digest) over plain HTTP."""
    pin = registry_client.parse_reference(model_image_pin(workload))
    ours = registry_client.parse_reference(reference)
    assert ours.repository == pin.repository and ours.digest, (
        f"{workload.name}: {reference} does not stand for {pin} (same repository path, by digest)"
    )
    return {
        c["name"]: {MODEL_IMAGE_ENV: reference, **PLAIN_HTTP_ENV}
        for c in workload.init_containers
        if resolve_env(workload, container=c).get(MODEL_IMAGE_ENV)
    }


class ModelRegistry:
    """The session's registry on loopback (tests/oci_registry_server.py) and what is in it: the
    versions the training Jobs pushed (ARTIFACT_REPOSITORY_ENV), and the images the failure tests
    push themselves, packaged as ``make package-model`` packages them, pushed as ``make
    push-model`` pushes them (services/model_image.py, services/registry_client.py)."""

    def __init__(self, host: str, directory: Path, layouts: Path):
        self.host, self.directory, self.layouts = host, directory, layouts

    def push(self, version_dir: Path, model: str, version: str, repository: str, tag: str) -> str:
        """Package ``version_dir`` as version ``version`` of ``model`` and push it to ``repository``
        (a path: ``ml/models/mnist``) as ``tag``; the pushed reference, by digest. For the images
        no training Job pushes (a tag other than the version's, so never the Job's)."""
        assert tag != version, f"tag {tag}: the training Job pushes {repository}:{version}, not the harness"
        layout = self.layouts / f"{repository.replace('/', '_')}-{tag}-{uuid.uuid4().hex[:8]}"
        artifact = model_image.package(version_dir, model, int(version), layout)
        digest = registry_client.push(artifact.layout, f"{self.host}/{repository}", tag, plain_http=True)
        return f"{self.host}/{repository}@{digest}"

    def manifest_digest(self, repository: str, tag_or_digest: str) -> str:
        """The digest the registry answers for ``repository:tag`` (or ``@digest``): the
        ``Docker-Content-Digest`` of a HEAD of its OCI manifest; "" when it holds none."""
        response = requests.head(
            f"http://{self.host}/v2/{repository}/manifests/{tag_or_digest}",
            headers={"Accept": model_image.MANIFEST_TYPE},
            timeout=10,
        )
        if response.status_code == 404:
            return ""
        assert response.status_code == 200, f"HEAD {repository}:{tag_or_digest}: HTTP {response.status_code}"
        return response.headers.get("Docker-Content-Digest", "")

    def trained_image(self, store: Path, workload: PodWorkload) -> str:
        """The version ``workload`` pins (MODEL_NAME, MODEL_VERSION), as published in ``store`` and
        pushed by its training Job, in the repository path of the model image the pod pins (its
        init containers', or a Job's trainer's):
        ``<host>/<repository>@<image_digest of the files>``. The registry holds that manifest,
        tagged with the version, only if the Job pushed exactly those bytes (checked here)."""
        env = resolve_env(workload)
        model, version = env["MODEL_NAME"], env["MODEL_VERSION"]
        pin = model_image_pin(workload) or job_model_image_pin(workload)
        assert pin, f"{workload.name} pulls no model image"
        repository = registry_client.parse_reference(pin).repository
        version_dir = store / model / version
        assert (version_dir / "metadata.json").is_file(), f"{workload.name}: {version_dir} is not a published version"
        digest = model_image.image_digest(version_dir, model, int(version))
        pushed = self.manifest_digest(repository, version)
        assert pushed == digest, (
            f"{workload.name}: {self.host}/{repository}:{version} is {pushed or 'not in the registry'}, not the image "
            f"{digest} of the trained files: the training Job did not push them"
        )
        return f"{self.host}/{repository}@{digest}"

    def manifest(self, reference: str) -> dict:
        """The manifest the registry stores for a pushed reference (read off its storage)."""
        digest = str(registry_client.parse_reference(reference).digest)
        return json.loads(blob_data(self.directory, digest).read_bytes())

    def layer_blob(self, reference: str) -> Path:
        """The file in the registry's storage that holds the one layer of a pushed reference."""
        [layer] = self.manifest(reference)["layers"]
        return blob_data(self.directory, layer["digest"])
