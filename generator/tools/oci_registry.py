"""An OCI registry server for the model-artifact tests: the CNCF Distribution registry.

Found on PATH when its version fits, else taken from Debian's ``docker-registry`` package: the
table's ``DOCKER_REGISTRY`` entry, bootstrapped by :mod:`generator.tools.debian`. The tests start
it on loopback with storage in a temporary directory and stop it themselves. Run
``python -m generator.tools.oci_registry`` to bootstrap it and print the version in use (the stamp
``.tools/docker-registry.json`` that ``make test`` checks).
"""

from __future__ import annotations

import sys

from generator.tools.table import DOCKER_REGISTRY


def registry_path() -> str:
    """Path of the registry server binary to use (bootstrapping it on first use)."""
    return DOCKER_REGISTRY.path("docker-registry")


if __name__ == "__main__":
    sys.exit(DOCKER_REGISTRY.main())
