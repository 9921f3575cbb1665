"""Fixtures for the release-command suites: each test gets its own git repository with the release state."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.pop("ML_GITOPS_ALLOW_DIRTY", None)
os.environ.pop("ML_GITOPS_ROOT", None)

from release_support import Repo, make_template


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory):
    """This checkout's platform.yaml, overlays/ and argocd/, committed in a fresh repository."""
    return make_template(tmp_path_factory.mktemp("template") / "repo")


@pytest.fixture
def repo(template_repo, tmp_path, capsys) -> Repo:
    """A private copy (with its .git) of the template repository."""
    root = tmp_path / "repo"
    shutil.copytree(template_repo, root, symlinks=True)
    return Repo(root, capsys)


@pytest.fixture
def store(tmp_path) -> Path:
    """A model store of the test's own (``publish`` fills it)."""
    return tmp_path / "models"
