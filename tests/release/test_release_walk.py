"""A full release walked with the release commands alone, one reviewed commit per step (docs/releases.md,
"Release commands"): a real training of model version 2, `make register` (its card is a
commit), `make pin-model ENV=dev`, promote to staging, prod-canary (10, 50, 100) and
prod-blue-green (switch), and a rollback that is `git revert`. After every step every overlay
renders and passes `make validate` (model pins included), and `make status` shows it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from release_support import ENVS, Repo, git

from generator.paths import REPO_ROOT
from generator.registry import cards
from generator.registry.next_version import next_version
from generator.validate import cli as validate_cli

SERVER = "registry.example.com/ml/inference-server"
#: The digest CI's build of the next release got (production pins images by digest only).
NEW = "sha256:" + "2e" * 32
#: How make status shows the trainer's, cut to 12 hex digits.
SHORT = NEW[:19]


def status(repo: Repo) -> dict[tuple[str, str], dict]:
    result = repo.run("status", "--json")
    assert result.code == 0, result.err
    envs = json.loads(result.out)
    assert [e["name"] for e in envs] == list(ENVS)
    rows = {}
    for env in envs:
        assert not env["error"]
        for row in env["rows"]:
            rows[(env["name"], row["variant"])] = {**row, "trainer": env["trainer"], "strategy": env["strategy"]}
    return rows


def pin(row: dict) -> str:
    """The tag or digest a status row's server image is pinned by."""
    image = row["image"]
    return image.split("@", 1)[1] if "@" in image else image.rsplit(":", 1)[1]


def step(repo: Repo, message: str, command: str, *args: str) -> dict[tuple[str, str], dict]:
    result = repo.run(command, *args)
    assert result.code == 0, (command, args, result.err)
    repo.commit(message)
    assert validate_cli.main(["--root", str(repo.root), "--no-freshness", "--no-secrets", "--no-kubeconform"]) == 0, (
        f"make validate is not clean after: {message}"
    )
    return status(repo)


def train(model_root: Path, version: int) -> None:
    """``make train``: the real trainer, its default settings, into ``model_root``."""
    command = [sys.executable, "-m", "services.training.train", "--model-root", str(model_root)]
    command += ["--model-name", "mnist", "--version", str(version)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]


def test_full_release_walk(repo: Repo, tmp_path):
    start = status(repo)
    old = pin(start[("prod-canary", "stable")])
    bg_active = next(v for (e, v), r in start.items() if e == "prod-blue-green" and r["active"])
    bg_idle = next(v for (e, v), r in start.items() if e == "prod-blue-green" and not r["active"])
    assert pin(start[("dev", "")]) != NEW
    assert {row["card"] for row in start.values()} == {"acc 0.9700"}, "every pin starts at the committed card"

    # train: the next version is one past the model store and the registry (make train)
    model_root = tmp_path / "models"
    version = next_version(model_root, "mnist", repo.root)
    assert version == 2
    train(model_root, version)

    # register: the card is a reviewed commit of its own, and nothing else changes
    registered = repo.run("register", "--model-root", str(model_root))
    assert registered.code == 0, registered.err
    git(repo.root, "add", "registry")
    repo.commit("register mnist v2")
    assert git(repo.root, "show", "--name-only", "--format=", "HEAD").split() == ["registry/mnist/2.yaml"]
    card = cards.read_card(repo.root, "mnist", 2)

    # CI: a merge to main built a new server and trainer; dev gets them, then model version 2
    assert repo.run("set-image", "--env", "dev", "--image", "trainer", "--digest", NEW).code == 0
    s = step(
        repo,
        "dev: server and trainer",
        "set-image",
        "--env",
        "dev",
        "--image",
        "server",
        "--digest",
        NEW,
        "--allow-dirty",
    )
    assert s[("dev", "")]["trainer"] == f"trainer@{SHORT}"
    s = step(repo, "pin mnist v2 in dev", "pin-model", "--env", "dev", "--version", "2")
    dev = s[("dev", "")]
    assert (pin(dev), dev["model_version"], dev["model_digest"]) == (NEW, "2", card.digest)
    assert dev["card"] == card.headline()
    assert pin(s[("staging", "")]) == old

    s = step(repo, "promote dev -> staging", "promote", "--from", "dev", "--to", "staging")
    # staging only serves (platform.yaml): no training Job shows a trainer, but the pin travels on
    assert (pin(s[("staging", "")]), s[("staging", "")]["model_version"], s[("staging", "")]["trainer"]) == (
        NEW,
        "2",
        "",
    )
    assert s[("staging", "")]["model_digest"] == card.digest, "promote copies the digest with the version"
    assert repo.image("staging", "registry.example.com/ml/trainer")["digest"] == NEW
    assert pin(s[("prod", "")]) == old

    s = step(repo, "promote staging -> prod-canary", "promote", "--from", "staging", "--to", "prod-canary")
    canary, stable = s[("prod-canary", "canary")], s[("prod-canary", "stable")]
    assert (pin(canary), canary["model_version"], canary["weight"]) == (NEW, "2", 0)
    assert (pin(stable), stable["model_version"], stable["weight"]) == (old, "1", 100)

    for weight in (10, 50):
        s = step(repo, f"canary {weight}", "canary", "--env", "prod-canary", "--weight", str(weight))
        canary, stable = s[("prod-canary", "canary")], s[("prod-canary", "stable")]
        assert (canary["weight"], stable["weight"]) == (weight, 100 - weight)
        assert canary["weight"] + stable["weight"] == 100
        assert int(canary["replicas"]) >= 1 and int(stable["replicas"]) >= 1
        assert pin(stable) == old and pin(canary) == NEW

    s = step(repo, "canary 100", "canary", "--env", "prod-canary", "--weight", "100")
    canary, stable = s[("prod-canary", "canary")], s[("prod-canary", "stable")]
    assert (pin(stable), stable["model_version"], stable["weight"], stable["pod_share"]) == (NEW, "2", 100, 100)
    assert (canary["weight"], canary["replicas"]) == (0, "0")

    s = step(repo, "promote staging -> prod-blue-green", "promote", "--from", "staging", "--to", "prod-blue-green")
    active, idle = s[("prod-blue-green", bg_active)], s[("prod-blue-green", bg_idle)]
    assert active["active"] and not idle["active"]
    assert (pin(idle), idle["model_version"], idle["traffic"]) == (NEW, "2", "preview")
    assert (pin(active), active["model_version"], active["traffic"]) == (old, "1", "ACTIVE")

    capacity = active["replicas"]
    s = step(repo, "switch", "switch", "--env", "prod-blue-green")
    now_active, now_idle = s[("prod-blue-green", bg_idle)], s[("prod-blue-green", bg_active)]
    assert now_active["active"] and now_active["traffic"] == "ACTIVE" and pin(now_active) == NEW
    assert now_active["replicas"] == capacity
    assert not now_idle["active"] and now_idle["traffic"] == "preview" and pin(now_idle) == old

    # rollback: revert the switch commit (a reviewed commit too); the old slot is live again
    git(repo.root, "revert", "--no-edit", "HEAD")
    assert validate_cli.main(["--root", str(repo.root), "--no-freshness", "--no-secrets", "--no-kubeconform"]) == 0
    s = status(repo)
    assert s[("prod-blue-green", bg_active)]["active"] and pin(s[("prod-blue-green", bg_active)]) == old
    assert s[("prod-blue-green", bg_active)]["model_version"] == "1"
    assert s[("prod-blue-green", bg_active)]["replicas"] == capacity
    assert pin(s[("prod", "")]) == old  # the rolling prod was never part of this walk
    table = repo.run("status")
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0].split()[:4] == ["ENVIRONMENT", "STRATEGY", "NAMESPACE", "VARIANT"]
    assert any(line.startswith("prod-canary ") and "weight 100%" in line for line in lines)
    assert sum("ACTIVE" in line for line in lines) == 1
