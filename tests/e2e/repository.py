"""What the e2e suite deploys, read from a repository root the way ``make validate`` reads it.

``Repository.load(root)`` discovers the overlays (``overlays/*/kustomization.yaml`` minus the
generated base and components, ``generator.validate.render.discover_overlays``), renders each
with the pinned kustomize and loads the Argo CD objects. Any root works: this checkout, a scratch
clone after a release command, or a repository rendered from another platform.yaml.

``scratch_clone(root, dest)`` makes a throw-away git repository holding the working tree of
``root`` (tracked and untracked files, not ignored ones) as one commit, sharing ``root``'s
.venv and .tools, so ``make switch`` and ``git revert`` run there and never touch ``root``.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from generator.paths import ARGOCD_ADMIN_DIR
from generator.tools import render_overlay
from generator.validate.render import discover_overlays, kustomization_namespace, load_argocd
from generator.validate.repofiles import tracked_files

GIT = [
    "git",
    "-c",
    "user.name=e2e",
    "-c",
    "user.email=e2e@example.com",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "init.defaultBranch=main",
]
#: What `make` bootstraps, shared with the clone (the stamps `make` checks are treated as up to date).
SHARED_TOOLCHAIN = (".venv", ".tools")
MAKE_STAMPS = (".venv/.installed-generator", ".tools/tools.json")


def load_objects(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@dataclass
class Overlay:
    """One environment overlay and what kustomize renders for it."""

    name: str
    path: str  # repository-relative, as an Application's source.path names it
    namespace: str
    objects: list[dict] = field(default_factory=list)

    def hooks(self) -> list[dict]:
        return [o for o in self.objects if "argocd.argoproj.io/hook" in (o["metadata"].get("annotations") or {})]

    def resources(self) -> list[dict]:
        """Everything but hooks: what Argo CD compares for Synced."""
        hooks = {id(o) for o in self.hooks()}
        return [o for o in self.objects if id(o) not in hooks]

    def moved_to(self, namespace: str) -> Overlay:
        """A copy whose objects all live in ``namespace`` (to deploy a tree beside another)."""
        objects = copy.deepcopy(self.objects)
        for obj in objects:
            obj.setdefault("metadata", {})["namespace"] = namespace
        return Overlay(self.name, self.path, namespace, objects)


@dataclass
class Repository:
    root: Path
    overlays: dict[str, Overlay]
    argocd: list[dict]  # everything under argocd/, argocd/admin/ included
    admin: list[dict] = field(default_factory=list)  # argocd/admin/ alone: the admin Application's

    @classmethod
    def load(cls, root: Path, only: tuple[str, ...] = ()) -> Repository:
        """Discover and render every overlay (or the ``only`` ones) and load argocd/."""
        overlays = {}
        for directory in discover_overlays(root):
            if only and directory.name not in only:
                continue
            overlays[directory.name] = Overlay(
                directory.name,
                directory.relative_to(root).as_posix(),
                kustomization_namespace(directory),
                load_objects(render_overlay(directory)),
            )
        argocd = load_argocd(root, render_overlay)
        resources = argocd.resources if argocd else []
        admin = [r.doc for r in resources if r.overlay == ARGOCD_ADMIN_DIR]
        return cls(root, overlays, [r.doc for r in resources], admin)

    def apps(self) -> list[dict]:
        """What the app of apps syncs: the objects directly in argocd/ (Argo CD does not recurse)."""
        admin = {id(o) for o in self.admin}
        return [o for o in self.argocd if id(o) not in admin]

    def applications(self) -> list[dict]:
        return [o for o in self.argocd if o["kind"] == "Application"]

    def projects(self) -> dict[str, dict]:
        return {o["metadata"]["name"]: o for o in self.argocd if o["kind"] == "AppProject"}

    def application_for(self, overlay: Overlay) -> dict:
        """The generated Application that syncs ``overlay`` (by its source path)."""
        found = [a for a in self.applications() if a["spec"].get("source", {}).get("path") == overlay.path]
        assert len(found) == 1, f"{overlay.path}: {len(found)} Applications have it as source.path"
        return found[0]

    def namespace_object(self, overlay: Overlay) -> dict:
        """The Namespace the admin Application creates for ``overlay``'s environment."""
        name = self.application_for(overlay)["spec"]["destination"]["namespace"]
        found = [o for o in self.admin if o["kind"] == "Namespace" and o["metadata"]["name"] == name]
        assert len(found) == 1, f"{overlay.path}: {len(found)} Namespace objects named {name!r} in {ARGOCD_ADMIN_DIR}/"
        return found[0]

    def all_objects(self) -> list[dict]:
        return [o for overlay in self.overlays.values() for o in overlay.objects] + self.argocd


def git(root: Path, *args: str) -> str:
    proc = subprocess.run([*GIT, "-C", str(root), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def scratch_clone(root: Path, dest: Path) -> Path:
    """A git repository at ``dest`` with ``root``'s working tree committed once (module docstring)."""
    dest.mkdir(parents=True)
    for rel in tracked_files(root):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest / rel)
    for name in SHARED_TOOLCHAIN:
        if (root / name).exists():
            os.symlink(root / name, dest / name)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "release state")
    return dest


def make(clone: Path, target: str, **variables: str) -> str:
    """``make <target> VAR=value ...`` in a scratch clone (sharing the toolchain); return stdout."""
    stamps = [arg for stamp in MAKE_STAMPS if (clone / stamp).exists() for arg in ("-o", stamp)]
    args = ["make", "--no-print-directory", "-C", str(clone), *stamps, target]
    args += [f"{key}={value}" for key, value in variables.items()]
    ours = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "ML_GITOPS_ROOT", "ML_GITOPS_ALLOW_DIRTY")
    env = {k: v for k, v in os.environ.items() if k not in ours}
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"make {target} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout
