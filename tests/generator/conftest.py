"""Fixtures for the generator suites: the checked platform.yaml and every overlay rendered once."""

from __future__ import annotations

import os

import pytest
import yaml

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from generator.config import Platform, load_config
from generator.paths import REPO_ROOT
from generator.tools import render_overlay
from generator.validate.render import discover_overlays


@pytest.fixture(scope="session")
def platform() -> Platform:
    """The repository's platform.yaml, checked."""
    return load_config(REPO_ROOT / "platform.yaml")


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """environment overlay name -> the objects `kubectl kustomize` renders for it (real kustomize;
    the previews' two overlays are tests/previews')."""
    overlays = discover_overlays(REPO_ROOT)
    return {overlay.name: [doc for doc in yaml.safe_load_all(render_overlay(overlay)) if doc] for overlay in overlays}
