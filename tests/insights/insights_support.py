"""A scripted release history for the insights suites: a real git repository whose commits set the
release files of every environment at fixed author and committer times."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from generator.paths import REPO_ROOT

#: The window every exact figure is computed in: the scripted day.
SINCE, UNTIL = "2026-01-05T00:00Z", "2026-01-06T00:00Z"


T0 = 1767571200  # 2026-01-05T00:00:00Z, a Monday
HOUR = 3600
SERVER = "registry.example.com/ml/inference-server"
MODELS_REPO = "registry.example.com/ml/models/mnist"
DIGESTS = {v: "sha256:" + f"{v}d" * 32 for v in ("1", "2", "3")}
IMAGES = {v: "sha256:" + f"{v}e" * 32 for v in ("1", "2", "3")}
GIT_ID = ["-c", "user.name=insights-tests", "-c", "user.email=insights@example.com", "-c", "commit.gpgsign=false"]


def at(hours: float) -> int:
    """The Unix time ``hours`` after T0."""
    return T0 + int(hours * HOUR)


@dataclass
class Track:
    """What one variant (or a rolling environment) runs."""

    tag: str = "1.0.0"
    version: str = "1"


@dataclass
class Env:
    """The release state the builder writes for one environment."""

    strategy: str
    variants: dict[str, Track] = field(default_factory=dict)
    active: str = "blue"
    canary_weight: int = 0


def _release_files(name: str, env: Env) -> dict[str, str]:
    images: list[dict[str, Any]] = [{"name": "registry.example.com/ml/trainer", "newTag": "0.1.0"}]
    maps = []
    for variant, track in env.variants.items():
        suffix = f"-{variant}" if variant else ""
        server: dict[str, Any] = {"name": f"inference-server{suffix}" if variant else SERVER, "newTag": track.tag}
        if variant:
            server = {"name": server["name"], "newName": SERVER, "newTag": track.tag}
        images.append(server)
        images.append({"name": f"mnist-model{suffix}", "newName": MODELS_REPO, "digest": IMAGES[track.version]})
        maps.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"mnist-release{suffix}"},
                "data": {"MODEL_VERSION": track.version, "MODEL_DIGEST": DIGESTS[track.version]},
            }
        )
    files = {
        "kustomization.yaml": yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": f"ml-{name}",
                "resources": ["../base"],
                "images": images,
            },
            sort_keys=False,
        ),
        "release.yaml": yaml.safe_dump_all(maps, sort_keys=False),
    }
    if env.strategy == "blue-green":
        idle = "green" if env.active == "blue" else "blue"
        files["active-slot.yaml"] = yaml.safe_dump_all(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "mnist-server"},
                    "spec": {"selector": {"slot": env.active}},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "mnist-server-preview"},
                    "spec": {"selector": {"slot": idle}},
                },
            ],
            sort_keys=False,
        )
    if env.strategy == "canary":
        files["traffic.yaml"] = yaml.safe_dump(
            {
                "apiVersion": "release.ml-gitops/v1",
                "kind": "CanaryWeights",
                "metadata": {"name": "mnist-server", "annotations": {"config.kubernetes.io/local-config": "true"}},
                "spec": {"stable": 100 - env.canary_weight, "canary": env.canary_weight},
            },
            sort_keys=False,
        )
    return files


def card(version: str, created_hours: float, accuracy: float) -> str:
    """A model card with the fields the insights read."""
    return yaml.safe_dump(
        {
            "model": "mnist",
            "version": int(version),
            "digest": DIGESTS[version],
            "created": _iso(at(created_hours)),
            "metrics": {"holdoutAccuracy": accuracy},
        },
        sort_keys=False,
    )


def _iso(time: int) -> str:
    return datetime.fromtimestamp(time, UTC).isoformat()


class Builder:
    """A git repository built commit by commit; ``envs`` is the release state the next commit writes."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True)
        shutil.copy2(REPO_ROOT / "platform.yaml", root / "platform.yaml")
        one = {"": Track()}
        self.envs = {
            "dev": Env("rolling", copy.deepcopy(one)),
            "staging": Env("rolling", copy.deepcopy(one)),
            "prod": Env("rolling", copy.deepcopy(one)),
            "prod-blue-green": Env("blue-green", {"blue": Track(), "green": Track()}),
            "prod-canary": Env("canary", {"stable": Track(), "canary": Track()}),
        }
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, hours: float | None = None) -> str:
        """Run git in the repository, with author and committer time ``hours`` after T0 when given."""
        env = dict(os.environ)
        if hours is not None:
            env["GIT_COMMITTER_DATE"] = f"@{at(hours)} +0000"
            env["GIT_AUTHOR_DATE"] = f"@{at(hours)} +0000"
        out = subprocess.run(
            ["git", *GIT_ID, "-C", str(self.root), *args], check=True, capture_output=True, text=True, env=env
        )
        return out.stdout

    def write(self, path: str, text: str) -> None:
        """Write one file of the work tree."""
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str, hours: float, files: dict[str, str] | None = None) -> str:
        """Write every environment's release files (and ``files``, by path), commit everything at
        ``hours`` after T0, and return the commit id."""
        for name, env in self.envs.items():
            for file, text in _release_files(name, env).items():
                self.write(f"overlays/{name}/{file}", text)
        for path, text in (files or {}).items():
            self.write(path, text)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message, hours=hours)
        return self.head()

    def head(self) -> str:
        """The current commit id."""
        return self.git("rev-parse", "HEAD").strip()


def build_history(root: Path) -> dict[str, str]:
    """The scripted history every exact-figure test reads; returns its commit ids by name.

    Times in hours after T0 (author and committer):
      c0  0    every environment at v1, server 1.0.0 (cards v1 created at -1)
      c1  1    a code change (no deployment)
      c2  2    card v2 created at 1.5 (no deployment)
      c3  3    dev pins v2, with trailers
      c4  5    staging gets v2 by a hand edit, no trailers
      b1  5.25 (branch) a code change;  b2  5.5 (branch) prod gets v2;  c5  6  merge of the branch
      c6  8    prod server 1.1.0;  c7  9  git revert of c6
      c8  10   dev server 1.2.0 by hand;  c9  12  dev back to 1.0.0 by hand (a rollback)
      c10 13   prod-canary: v2 into the canary track;  c11 14 weight 10;  c12 15 weight 50;  c13 16 weight 0
      c14 17   prod-blue-green: v2 into green (idle);  c15 18 switch to green;  c16 20 revert by a Reverts: trailer
    """
    b = Builder(root)
    ids: dict[str, str] = {}
    ids["c0"] = b.commit("initial release state", 0, {"registry/mnist/1.yaml": card("1", -1, 0.97), "code.txt": "1"})
    ids["c1"] = b.commit("a code change", 1, {"code.txt": "2"})
    ids["c2"] = b.commit("register mnist v2", 2, {"registry/mnist/2.yaml": card("2", 1.5, 0.98)})
    b.envs["dev"].variants[""].version = "2"
    ids["c3"] = b.commit(
        "pin mnist v2 in dev\n\nRelease-Action: pin-model\nRelease-Env: dev\nModel-Version: 2\n"
        f"Model-Digest: {DIGESTS['2']}",
        3,
    )
    b.envs["staging"].variants[""].version = "2"
    ids["c4"] = b.commit("staging: v2 by hand", 5)
    b.git("checkout", "-q", "-b", "feature")
    ids["b1"] = b.commit("feature: a code change", 5.25, {"code.txt": "3"})
    b.envs["prod"].variants[""].version = "2"
    ids["b2"] = b.commit("feature: prod gets v2", 5.5)
    b.git("checkout", "-q", "main")
    b.git("merge", "-q", "--no-ff", "-m", "Merge branch feature", "feature", hours=6)
    ids["c5"] = b.head()
    b.envs["prod"].variants[""].tag = "1.1.0"
    ids["c6"] = b.commit("prod: server 1.1.0\n\nRelease-Action: set-image\nRelease-Env: prod", 8)
    b.git("revert", "--no-edit", ids["c6"], hours=9)
    ids["c7"] = b.head()
    b.envs["prod"].variants[""].tag = "1.0.0"
    b.envs["dev"].variants[""].tag = "1.2.0"
    ids["c8"] = b.commit("dev: try server 1.2.0", 10)
    b.envs["dev"].variants[""].tag = "1.0.0"
    ids["c9"] = b.commit("dev: back to server 1.0.0", 12)
    b.envs["prod-canary"].variants["canary"].version = "2"
    ids["c10"] = b.commit("prod-canary: v2 into the canary track", 13)
    for name, hours, weight in (("c11", 14, 10), ("c12", 15, 50), ("c13", 16, 0)):
        b.envs["prod-canary"].canary_weight = weight
        ids[name] = b.commit(f"prod-canary: canary weight {weight}\n\nRelease-Action: canary", hours)
    b.envs["prod-blue-green"].variants["green"].version = "2"
    ids["c14"] = b.commit("prod-blue-green: v2 into green", 17)
    b.envs["prod-blue-green"].active = "green"
    ids["c15"] = b.commit("prod-blue-green: switch to green\n\nRelease-Action: switch", 18)
    b.envs["prod-blue-green"].active = "blue"
    ids["c16"] = b.commit(f"prod-blue-green: back to blue\n\nReverts: {ids['c15']}", 20)
    return ids
