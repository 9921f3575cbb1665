"""Fixtures of the preview suites: each test gets its own repository (a copy of one per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from preview_support import make_repo


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory) -> Path:
    """This checkout's release state committed on main in a fresh repository."""
    return make_repo(tmp_path_factory.mktemp("preview-template") / "repo")


@pytest.fixture
def repo(template_repo: Path, tmp_path: Path) -> Path:
    """A private copy (with its .git) of the template repository."""
    root = tmp_path / "repo"
    shutil.copytree(template_repo, root, symlinks=True)
    return root
