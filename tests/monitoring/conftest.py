"""Fixtures of the monitoring suites. The live test runs the real model server with the services
suites' helpers (tests/services/svc_helpers.py, put on the import path here) and their one
shared training per run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from generator.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests" / "services"))

from svc_helpers import shared_trained_store


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory, worker_id) -> Path:
    """A model root holding ``mnist/1`` (the services suites' shared training): read-only."""
    return shared_trained_store(tmp_path_factory, worker_id)
