"""What the image tests do with a rendered workload: run a training Job to completion, or bring a
server Deployment's container up through its probes, always removing exactly what was started."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from pod_run import Container
from pod_spec import PodWorkload, check_runs_as_non_root, plan_run, resolve_env

from generator.tools.images.engine import Engine
from services import artifacts

#: The one addition to the Job's env: a short training (the test proves the image trains and
#: publishes, not the model's accuracy). Everything else is what the manifest declares.
SHORT_TRAINING = {"TRAINING_EPOCHS": "1", "TRAINING_MAX_EXAMPLES": "600"}
#: The server env the image test sets beside the manifest's: the digest of the version the test
#: trained, which is what ``make register`` then ``make pin-model`` pin for those bytes (the
#: overlay pins the digest of the committed card, registry/<model>/<version>.yaml: other bytes).
DIGEST_ENV = "MODEL_DIGEST"
FS_GROUP_MODE = 0o2775  # what a kubelet gives a volume for fsGroup: group-owned, setgid, group-writable


def repository_of(image: str) -> str:
    """``host[:port]/path:tag`` or ``...@sha256:...`` without the tag or digest."""
    image = image.split("@", 1)[0]
    head, _, last = image.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


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


def run_job(
    engine: Engine, workload: PodWorkload, image: str, image_user: str, store: Path, scratch: Path, label: str
) -> JobOutcome:
    """Run a Job's container to completion (within activeDeadlineSeconds) and collect its outcome."""
    check_runs_as_non_root(workload, image_user)
    plan = plan_run(engine.name, workload, image, claims_of(workload, store), scratch, SHORT_TRAINING, label)
    container = Container(engine, plan)
    try:
        container.start()
        deadline = float(workload.spec.get("activeDeadlineSeconds", 0) or 1800)
        code = container.wait(deadline) if not container.start_error else container.wait(5)
        failure = "" if code == 0 else container.failure(f"Job {workload.name} ended with exit code {code}")
        return JobOutcome(workload, code, container.logs(), failure, plan.env)
    finally:
        container.remove()


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
):
    """A server container started as the Deployment declares, through the named probes.

    ``MODEL_DIGEST``, where the Deployment reads one, is the digest of the version in ``store``
    (``pin_trained_digest``, see DIGEST_ENV); False keeps the overlay's own pin."""
    check_runs_as_non_root(workload, image_user)
    digest = trained_digest(store, workload) if pin_trained_digest else ""
    extra = {DIGEST_ENV: digest} if digest else None
    plan = plan_run(engine.name, workload, image, claims_of(workload, store), scratch, extra, label)
    container = Container(engine, plan)
    try:
        container.start()
        spec = workload.container
        for kind in probes:
            if f"{kind}Probe" in spec:
                container.await_probe(kind, spec[f"{kind}Probe"], ceiling_seconds=progress_deadline)
        yield container
    finally:
        container.remove()


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
