"""The rendered manifests the image suite runs: every environment overlay, built by kustomize."""

from __future__ import annotations

from functools import cache

import yaml
from pod_spec import PodWorkload, repository_of, workloads

from generator.paths import REPO_ROOT
from generator.tools import render_overlay
from generator.validate.render import NOT_ENVIRONMENTS

OVERLAY_EXCLUDED = NOT_ENVIRONMENTS


def overlay_names() -> list[str]:
    """Every environment overlay (new ones are picked up without edits)."""
    return sorted(
        p.parent.name
        for p in (REPO_ROOT / "overlays").glob("*/kustomization.yaml")
        if p.parent.name not in OVERLAY_EXCLUDED
    )


@cache
def rendered(overlay: str) -> tuple[dict, ...]:
    """An overlay rendered by kubectl's kustomize (cached: collection and tests share it)."""
    return tuple(doc for doc in yaml.safe_load_all(render_overlay(REPO_ROOT / "overlays" / overlay)) if doc)


def overlay_workloads(overlay: str, kind: str) -> list[PodWorkload]:
    """The overlay's Deployments or Jobs."""
    return workloads(list(rendered(overlay)), kind)


def training_overlays() -> list[str]:
    """The overlays that train (render training Jobs); the others only serve."""
    return [overlay for overlay in overlay_names() if overlay_workloads(overlay, "Job")]


def local_image(built_images: dict[str, str], workload: PodWorkload) -> str:
    """The built image standing for the one a workload's manifest pins."""
    repository = repository_of(workload.container["image"])
    assert repository in built_images, f"{workload.name}: image {repository} is not one make images builds"
    return built_images[repository]
