"""An OCI registry server for the model-artifact tests: the CNCF Distribution registry.

Found on PATH when its version fits, else taken from Debian's ``docker-registry`` package
(:mod:`generator.tools.debian`). The tests start it on loopback with storage in a temporary
directory and stop it themselves. Run ``python -m generator.tools.oci_registry`` to bootstrap
and print the version in use.
"""

from __future__ import annotations

import re
import sys

from generator.tools import debian

#: Distribution 2.7 was the first to store OCI image manifests (Debian bookworm has 2.8).
MIN_VERSION = (2, 7)


def fits(version: str) -> bool:
    """Tell whether a reported Distribution version stores OCI manifests."""
    numbers = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    return numbers is not None and (int(numbers[1]), int(numbers[2])) >= MIN_VERSION


DOCKER_REGISTRY = debian.DebianTool(
    package="docker-registry",
    binaries=("docker-registry",),
    version_pattern=r"distribution v?(\d+\.\d+\.\d+)",
    fits=fits,
    wanted=f"Distribution (docker-registry) {MIN_VERSION[0]}.{MIN_VERSION[1]}+",
)


def registry_path() -> str:
    """Path of the registry server binary to use (bootstrapping it on first use)."""
    return DOCKER_REGISTRY.path("docker-registry")


if __name__ == "__main__":
    sys.exit(debian.main(DOCKER_REGISTRY))
