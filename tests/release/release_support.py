"""Helpers for the release-command suites: a throw-away git repository holding the release state, the
commands run in-process against it, and questions answered from its rendered manifests."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from generator.tools import REPO_ROOT, render_overlay

#: What a workflow command reads: the spec, the overlays (base and components are committed,
#: generated files), the Argo CD objects `make validate` cross-checks, and the model cards.
COPIED = ("platform.yaml", "overlays", "argocd", "registry")
GIT_ID = [
    "-c",
    "user.name=release-tests",
    "-c",
    "user.email=release-tests@example.com",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "init.defaultBranch=main",
]
MODULES = {
    "promote": "promote",
    "canary": "canary",
    "switch": "switch",
    "set-image": "set_image",
    "diff": "diff",
    "status": "status",
    "register": "register",
    "pin-model": "pin_model",
}
ENVS = ("dev", "staging", "prod", "prod-blue-green", "prod-canary")
TAG_A = "1.4.2"
DIGEST_A = "sha256:" + "a1" * 32


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *GIT_ID, "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def make_template(dest: Path) -> Path:
    """A git repository with this checkout's release state committed as one commit."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        elif src.exists():
            shutil.copy2(src, dest / name)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "release state")
    return dest


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Repo:
    root: Path
    capsys: object

    def run(self, command: str, *args: str) -> Result:
        """``python -m generator <command> <args> --repo <root>``, in-process."""
        self.capsys.readouterr()
        module = importlib.import_module(f"generator.release.{MODULES[command]}")
        code = module.main([*args, "--repo", str(self.root)])
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def commit(self, message: str) -> None:
        git(self.root, "commit", "-q", "-a", "-m", message)

    def snapshot(self) -> dict[str, bytes]:
        """Every file of the release state, byte for byte."""
        out = {}
        for name in COPIED:
            base = self.root / name
            for path in [base] if base.is_file() else sorted(base.rglob("*")):
                if path.is_file():
                    out[path.relative_to(self.root).as_posix()] = path.read_bytes()
        return out

    def docs(self, relpath: str) -> list[dict]:
        return [d for d in yaml.safe_load_all((self.root / relpath).read_text()) if d is not None]

    def kustomization(self, env: str) -> dict:
        return self.docs(f"overlays/{env}/kustomization.yaml")[0]

    def image(self, env: str, name: str) -> dict:
        return next(e for e in self.kustomization(env)["images"] if e["name"] == name)

    def replicas(self, env: str) -> dict[str, int]:
        return {e["name"]: e["count"] for e in self.kustomization(env).get("replicas", [])}

    def versions(self, env: str) -> dict[str, str]:
        return {d["metadata"]["name"]: d["data"]["MODEL_VERSION"] for d in self.docs(f"overlays/{env}/release.yaml")}

    def weights(self, env: str = "prod-canary") -> dict[str, int]:
        weights = self.docs(f"overlays/{env}/traffic.yaml")[0]["spec"]
        return {f"mnist-server-{track}": weight for track, weight in weights.items()}

    def slots(self, env: str = "prod-blue-green") -> dict[str, str]:
        return {
            d["metadata"]["name"]: d["spec"]["selector"]["slot"] for d in self.docs(f"overlays/{env}/active-slot.yaml")
        }

    def render(self, env: str) -> list[dict]:
        return [d for d in yaml.safe_load_all(render_overlay(self.root / "overlays" / env)) if d]


# --- questions answered from rendered manifests (independent of the product's own helpers) -----


def selects(selector: dict, labels: dict) -> bool:
    """A Service's selector (a plain map) against a pod template's labels."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pods_of(docs: list[dict], service: str) -> set[str]:
    """Names of the Deployments whose pods the Service selects."""
    selector = by_kind(docs, "Service")[service]["spec"]["selector"]
    return {
        name
        for name, d in by_kind(docs, "Deployment").items()
        if selects(selector, d["spec"]["template"]["metadata"]["labels"])
    }


def server_image(deployment: dict) -> str:
    return next(c["image"] for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "server")


def model_version(docs: list[dict], deployment: dict) -> str:
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "server")
    ref = next(e for e in container["env"] if e["name"] == "MODEL_VERSION")["valueFrom"]["configMapKeyRef"]
    return by_kind(docs, "ConfigMap")[ref["name"]]["data"][ref["key"]]


def route_shares(docs: list[dict], route: str = "mnist-server") -> dict[str, float]:
    """Deployment -> percent of default traffic the HTTPRoute sends its pods (via its Service)."""
    spec = by_kind(docs, "HTTPRoute")[route]["spec"]
    rule = next(r for r in spec["rules"] if not r.get("matches"))
    total = sum(ref.get("weight", 1) for ref in rule["backendRefs"])
    shares: dict[str, float] = {}
    for ref in rule["backendRefs"]:
        for deployment in pods_of(docs, ref["name"]):
            shares[deployment] = shares.get(deployment, 0) + 100 * ref.get("weight", 1) / total
    return shares


def replica_shares(docs: list[dict], service: str = "mnist-server") -> dict[str, float]:
    """Deployment -> percent of the Service's pods it runs (traffic share without a Gateway)."""
    deployments = by_kind(docs, "Deployment")
    selected = pods_of(docs, service)
    total = sum(deployments[n]["spec"]["replicas"] for n in selected)
    return {n: (100 * deployments[n]["spec"]["replicas"] / total if total else 0.0) for n in selected}
