"""Fixtures of the image suite (``make test-images``, not part of ``make test``).

The images are the ones ``make images`` built at this revision; the manifests are every overlay
rendered with the real kustomize. Each training overlay gets its own model store (a host directory
standing for its claim), trained once per session by running its training Jobs as they are
rendered, each pushing the version it published as its model image to the session's loopback
registry (``model_registry``). A serve-only overlay (no training Jobs: ``train: false`` in
platform.yaml) mounts no store: its pods pull the model image their overlay pins, so it serves
the version a training overlay's Job published and pushed there, by the digest of its files'
image (image_flows: the substitutions).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from image_flows import JobOutcome, ModelRegistry, image_user, model_store, run_job
from image_manifests import local_image, overlay_workloads, training_overlays
from oci_registry_server import running_registry

from generator.tools.images.build import code_revision, image_specs
from generator.tools.images.engine import Engine, detect_engine
from services.training.data import load_dataset


@pytest.fixture(scope="session")
def engine() -> Engine:
    """Docker or podman: the image test runs containers (buildah alone cannot)."""
    return detect_engine(must_run=True)


@pytest.fixture(scope="session")
def built_images(engine) -> dict[str, str]:
    """Repository -> the local reference ``make images`` built at this revision."""
    revision = code_revision()
    references = {spec.repository: spec.reference(revision) for spec in image_specs().values()}
    missing = [ref for ref in references.values() if not engine.image_exists(ref)]
    if missing:
        pytest.fail(f"not built at this revision: {', '.join(missing)}; run `make images` (make test-images does)")
    return references


@pytest.fixture(scope="session")
def session_label() -> str:
    """The label value every container of this session carries."""
    return uuid.uuid4().hex[:12]


@dataclass
class TrainedStore:
    """An overlay's model store after its training Jobs ran; for a serve-only overlay, the store of
    the training overlay whose published versions it serves (``source``), and no Jobs."""

    path: Path
    jobs: list[JobOutcome] = field(default_factory=list)
    source: str = ""


class Stores:
    """One model store per training overlay, trained on first use by the overlay's own Jobs."""

    def __init__(self, engine, built_images, tmp_path_factory, label, model_registry: ModelRegistry):
        self.engine, self.built, self.tmp, self.label = engine, built_images, tmp_path_factory, label
        self.model_registry = model_registry
        self._stores: dict[str, TrainedStore] = {}

    def trained(self, overlay: str) -> TrainedStore:
        """The overlay's store, its Jobs run in rendered order (a second Job of a version skips
        training it, and pushes it again), pushing to the session's registry; for a serve-only
        overlay, the first training overlay's (what its model images are made of)."""
        if overlay not in self._stores:
            jobs = overlay_workloads(overlay, "Job")
            if not jobs:  # serve-only: the versions a training overlay published (and pushed as images)
                source = training_overlays()[0]
                self._stores[overlay] = TrainedStore(self.trained(source).path, source=source)
                return self._stores[overlay]
            store = TrainedStore(model_store(self.tmp.mktemp(f"store-{overlay}"), jobs[0]))
            for job in jobs:
                image = local_image(self.built, job)
                scratch = self.tmp.mktemp(f"scratch-{job.name}")
                user = image_user(self.engine, image)
                store.jobs.append(
                    run_job(self.engine, job, image, user, store.path, scratch, self.label, self.model_registry)
                )
            self._stores[overlay] = store
        return self._stores[overlay]


@pytest.fixture(scope="session")
def stores(engine, built_images, tmp_path_factory, session_label, model_registry) -> Stores:
    """The per-overlay model stores (trained lazily; the Jobs push to ``model_registry``)."""
    return Stores(engine, built_images, tmp_path_factory, session_label, model_registry)


@pytest.fixture(scope="session")
def model_registry(tmp_path_factory) -> Iterator[ModelRegistry]:
    """A registry on loopback for the whole session (stopped at its end), which the training Jobs
    push their versions' model images to, and serve-only pods pull them from."""
    directory = tmp_path_factory.mktemp("model-registry")
    with running_registry(directory) as host:
        yield ModelRegistry(host, directory, tmp_path_factory.mktemp("model-layouts"))


@pytest.fixture(scope="session")
def digits() -> np.ndarray:
    """Eight real MNIST digits (float32, [0, 1], 28x28x1) from the data the trainer ships with."""
    return load_dataset(None).x[:8]
