"""Locate kubeconform, the schema validator Kubernetes users know.

No package registry carries it, so it is never downloaded: the table's ``KUBECONFORM`` entry
looks in ``$KUBECONFORM`` (an explicit choice, so an error when it does not run), then on
``PATH``, as the pull-request workflow provides it. ``make validate`` runs it whenever one is
found and says in one line that it did not run otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from generator.tools.base import ToolError
from generator.tools.table import KUBECONFORM

[ENV_VAR] = KUBECONFORM.file_variables
PROBE = KUBECONFORM.binaries[0].probe


@dataclass(frozen=True)
class Kubeconform:
    """A kubeconform binary that ran, and the version it reported."""

    path: str
    version: str


def find_kubeconform() -> Kubeconform | None:
    """The kubeconform to use, or None when there is none; ToolError when $KUBECONFORM is broken."""
    for path, source in KUBECONFORM.candidates("kubeconform", os.environ):
        version = PROBE.version_of(path)
        if version is not None:
            return Kubeconform(str(path), version)
        if source == ENV_VAR:
            raise ToolError(f"{ENV_VAR}={path} does not run (kubeconform -v failed)")
    return None
