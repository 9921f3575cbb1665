"""The server image serving a model version from the version's OCI image, as the chart declares it
with ``model.artifact.image`` and ``delivery: imageVolume``: the version a training Job published,
packaged (``make package-model``), pushed to a real registry on loopback (Distribution), pulled
by digest as a kubelet pulls an image volume, mounted read-only and served. An image whose files
are not the pinned digest leaves the server not ready, saying so: what a tampered or wrong image
gets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import requests
import yaml
from image_flows import image_user, ready_server, refused_for_its_digest
from image_manifests import local_image, training_overlays
from oci_registry_server import running_registry
from pod_spec import PodWorkload, workloads

from generator.paths import REPO_ROOT
from generator.tools import helm_path, run_tool
from generator.tools.images.build import image_specs
from services import artifacts, model_image, registry_client
from services.inference.backends import LiteRTBackend

MODEL, VERSION = "mnist", "1"
RELEASE_CONFIG_MAP = "mnist-release"


def chart_workload(model_image: str, digest: str, scratch: Path) -> PodWorkload:
    """The chart's Deployment serving ``model_image``, its version and digest pinned by a release
    ConfigMap (as the generated overlays pin them)."""
    values = {
        "image": {"repository": image_specs()["server"].repository, "tag": "test"},
        # The image volume delivery (the chart's other one, initContainer, is test_model_image_fetch.py's).
        "model": {
            "name": MODEL,
            "versionConfigMap": RELEASE_CONFIG_MAP,
            "artifact": {"image": model_image, "delivery": "imageVolume"},
        },
        "autoscaling": {"enabled": False},
    }
    scratch.mkdir(parents=True, exist_ok=True)
    values_file = scratch / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    rendered = run_tool(
        [
            helm_path(),
            "template",
            "mnist",
            str(REPO_ROOT / "charts" / "inference-service"),
            "--values",
            str(values_file),
        ]
    )
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    release = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": RELEASE_CONFIG_MAP},
        "data": {"MODEL_VERSION": VERSION, "MODEL_DIGEST": digest},
    }
    [workload] = workloads([*docs, release], "Deployment")
    return workload


def pull(engine, reference: str) -> None:
    """As a kubelet pulls an image volume (the loopback registry speaks plain HTTP)."""
    engine.run("pull", *(["--tls-verify=false"] if engine.name == "podman" else []), reference, timeout=300)


def test_the_server_serves_the_version_from_its_image(engine, built_images, stores, tmp_path, session_label, digits):
    store = stores.trained(training_overlays()[0])
    version_dir = store.path / MODEL / VERSION
    digest = artifacts.digest_directory(version_dir)
    # A copy of the version with one more file: another image, whose files have another digest.
    other_dir = tmp_path / "other" / MODEL / VERSION
    shutil.copytree(version_dir, other_dir)
    (other_dir / "README.txt").write_text("not what the model card pinned\n")
    empty_store = tmp_path / "no-store"  # no claim: the image is the model
    empty_store.mkdir()

    def serve(name: str, reference: str, **options):
        """The chart's server container with ``reference`` as its model image, ``digest`` pinned."""
        workload = chart_workload(reference, digest, tmp_path / f"chart-{name}")
        image = local_image(built_images, workload)
        deadline = float(workload.spec.get("progressDeadlineSeconds", 600))
        scratch = tmp_path / f"run-{name}"
        user = image_user(engine, image)
        return ready_server(
            engine,
            workload,
            image,
            user,
            empty_store,
            scratch,
            session_label,
            deadline,
            pin_trained_digest=False,
            **options,
        )

    with running_registry(tmp_path / "registry") as host:
        repository = f"{host}/ml/models/{MODEL}"
        references = {}
        for name, source in (("good", version_dir), ("bad", other_dir)):
            artifact = model_image.package(source, MODEL, int(VERSION), tmp_path / f"layout-{name}")
            pushed = registry_client.push(artifact.layout, repository, f"{VERSION}-{name}", plain_http=True)
            references[name] = f"{repository}@{pushed}"
            pull(engine, references[name])

        with serve("good", references["good"]) as server:
            base = f"http://127.0.0.1:{server.host_port('http')}"
            response = requests.post(
                f"{base}/v1/models/{MODEL}:predict", json={"instances": digits.tolist()}, timeout=30
            )
            assert response.status_code == 200, server.failure(f"predict: {response.status_code} {response.text[:200]}")
            expected = LiteRTBackend(version_dir).predict(digits)
            np.testing.assert_allclose(np.asarray(response.json()["predictions"]), expected, atol=1e-5)
            status = requests.get(f"{base}/v1/models/{MODEL}", timeout=10).json()["model_version_status"]
            assert [(s["version"], s["state"]) for s in status] == [(VERSION, "AVAILABLE")]

        with serve("bad", references["bad"], probes=("startup", "liveness")) as server:
            reason = refused_for_its_digest(server, "an image with other files was served")
            assert "digest mismatch" in reason and digest in reason, reason
