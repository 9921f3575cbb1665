"""The model store as the release commands see it: a model's published version directories
(``<MODEL_ROOT>/<model>/<version>/``, as ``make train`` writes them) and their OCI images."""

from __future__ import annotations

import argparse
from pathlib import Path

from generator.config import Platform
from generator.registry.next_version import is_version_name
from generator.registry.oci import layout_dir
from generator.release.errors import Refused
from generator.release.overlay import load_platform
from services import model_image


def find_version_dir(model_root: Path, model: str, version: str) -> tuple[int, Path]:
    """``<model_root>/<model>/<version>/``, or the newest published version when ``version`` is
    empty; Refused (naming the directory) when there is none."""
    model_dir = model_root / model
    if version:
        if not is_version_name(version):
            raise Refused(f"VERSION must be a positive integer, got {version!r}")
        number = int(version)
    else:
        published = sorted(int(p.name) for p in model_dir.glob("*") if p.is_dir() and is_version_name(p.name))
        if not published:
            raise Refused(f"{model_dir} holds no published version (make train, or give VERSION=)")
        number = published[-1]
    version_dir = model_dir / str(number)
    if not version_dir.is_dir():
        raise Refused(f"{version_dir} does not exist: train it first (make train) or set MODEL_ROOT=")
    return number, version_dir


def known_model(root: Path, model: str) -> Platform:
    """platform.yaml, once it is known to list ``model`` (Refused otherwise)."""
    platform = load_platform(root)
    models = [m.name for m in platform.models]
    if model not in models:
        raise Refused(f"unknown model {model!r} (platform.yaml has: {', '.join(models)})")
    return platform


def package_version(root: Path, model: str, version: str, model_root: Path) -> model_image.Artifact:
    """Package one version of ``model`` (the newest when ``version`` is empty) into its layout."""
    known_model(root, model)
    number, version_dir = find_version_dir(model_root, model, version)
    try:
        return model_image.package(version_dir, model, number, layout_dir(root, model, number))
    except model_image.ArtifactError as exc:
        raise Refused(str(exc)) from exc


def add_version_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments that name a version in the model store (MODEL, VERSION, MODEL_ROOT)."""
    p.add_argument("--model", default="mnist", help="model name from platform.yaml (default: mnist)")
    p.add_argument("--version", default="", help="the version (default: the newest in the model store)")
    p.add_argument("--model-root", default="models", help="the model store (default: models, as make train writes)")
