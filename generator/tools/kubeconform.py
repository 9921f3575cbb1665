"""Locate kubeconform, the schema validator Kubernetes users know.

No package registry carries it, so it is never downloaded: it is taken from ``$KUBECONFORM``
(an explicit choice, so an error when it does not run), then ``PATH``, as the pull-request
workflow provides it. ``make validate`` runs it whenever one is found and says in one line that
it did not run otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from generator.tools import ToolError

ENV_VAR = "KUBECONFORM"


@dataclass(frozen=True)
class Kubeconform:
    """A kubeconform binary that ran, and the version it reported."""

    path: str
    version: str


def _version(path: str) -> str | None:
    try:
        out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or out.stderr.strip() or None


def find_kubeconform() -> Kubeconform | None:
    """The kubeconform to use, or None when there is none; ToolError when $KUBECONFORM is broken."""
    explicit = os.environ.get(ENV_VAR, "")
    if explicit:
        version = _version(explicit)
        if version is None:
            raise ToolError(f"{ENV_VAR}={explicit} does not run (kubeconform -v failed)")
        return Kubeconform(explicit, version)
    candidate = shutil.which("kubeconform")
    if candidate and (version := _version(candidate)):
        return Kubeconform(candidate, version)
    return None
