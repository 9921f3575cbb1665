"""A full release walked with the release commands alone, one commit per step:
dev -> staging -> prod-canary (10, 50, 100) and prod-blue-green (switch, switch back).
After every step every overlay renders and passes `make validate`, and `make status` shows it."""

from __future__ import annotations

import json

from release_support import ENVS, Repo

from generator.validate import cli as validate_cli

SERVER = "registry.example.com/ml/inference-server"
NEW = "2.0.0"


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


def tag(row: dict) -> str:
    return row["image"].rsplit(":", 1)[1]


def step(repo: Repo, message: str, command: str, *args: str) -> dict[tuple[str, str], dict]:
    result = repo.run(command, *args)
    assert result.code == 0, (command, args, result.err)
    repo.commit(message)
    assert validate_cli.main(["--root", str(repo.root), "--no-freshness", "--no-secrets", "--no-kubeconform"]) == 0, (
        f"make validate is not clean after: {message}"
    )
    return status(repo)


def test_full_release_walk(repo: Repo):
    start = status(repo)
    old = tag(start[("prod-canary", "stable")])
    bg_active = next(v for (e, v), r in start.items() if e == "prod-blue-green" and r["active"])
    bg_idle = next(v for (e, v), r in start.items() if e == "prod-blue-green" and not r["active"])
    assert tag(start[("dev", "")]) != NEW

    # CI: a merge to main built a new server and trainer; the ML engineer pins model version 2
    assert repo.run("set-image", "--env", "dev", "--image", "trainer", "--tag", NEW).code == 0
    (repo.root / "overlays/dev/release.yaml").write_text(
        (repo.root / "overlays/dev/release.yaml").read_text().replace('MODEL_VERSION: "1"', 'MODEL_VERSION: "2"')
    )
    s = step(
        repo,
        "dev: server, trainer and model 2",
        "set-image",
        "--env",
        "dev",
        "--image",
        "server",
        "--tag",
        NEW,
        "--allow-dirty",
    )
    assert (tag(s[("dev", "")]), s[("dev", "")]["model_version"]) == (NEW, "2")
    assert s[("dev", "")]["trainer"] == f"trainer:{NEW}"
    assert tag(s[("staging", "")]) == old

    s = step(repo, "promote dev -> staging", "promote", "--from", "dev", "--to", "staging")
    # staging only serves (platform.yaml): no training Job shows a trainer, but the pin travels on
    assert (tag(s[("staging", "")]), s[("staging", "")]["model_version"], s[("staging", "")]["trainer"]) == (
        NEW,
        "2",
        "",
    )
    assert repo.image("staging", "registry.example.com/ml/trainer")["newTag"] == NEW
    assert tag(s[("prod", "")]) == old

    s = step(repo, "promote staging -> prod-canary", "promote", "--from", "staging", "--to", "prod-canary")
    canary, stable = s[("prod-canary", "canary")], s[("prod-canary", "stable")]
    assert (tag(canary), canary["model_version"], canary["weight"]) == (NEW, "2", 0)
    assert (tag(stable), stable["model_version"], stable["weight"]) == (old, "1", 100)

    for weight in (10, 50):
        s = step(repo, f"canary {weight}", "canary", "--env", "prod-canary", "--weight", str(weight))
        canary, stable = s[("prod-canary", "canary")], s[("prod-canary", "stable")]
        assert (canary["weight"], stable["weight"]) == (weight, 100 - weight)
        assert canary["weight"] + stable["weight"] == 100
        assert int(canary["replicas"]) >= 1 and int(stable["replicas"]) >= 1
        assert tag(stable) == old and tag(canary) == NEW

    s = step(repo, "canary 100", "canary", "--env", "prod-canary", "--weight", "100")
    canary, stable = s[("prod-canary", "canary")], s[("prod-canary", "stable")]
    assert (tag(stable), stable["model_version"], stable["weight"], stable["pod_share"]) == (NEW, "2", 100, 100)
    assert (canary["weight"], canary["replicas"]) == (0, "0")

    s = step(repo, "promote staging -> prod-blue-green", "promote", "--from", "staging", "--to", "prod-blue-green")
    active, idle = s[("prod-blue-green", bg_active)], s[("prod-blue-green", bg_idle)]
    assert active["active"] and not idle["active"]
    assert (tag(idle), idle["model_version"], idle["traffic"]) == (NEW, "2", "preview")
    assert (tag(active), active["model_version"], active["traffic"]) == (old, "1", "ACTIVE")

    capacity = active["replicas"]
    s = step(repo, "switch", "switch", "--env", "prod-blue-green")
    now_active, now_idle = s[("prod-blue-green", bg_idle)], s[("prod-blue-green", bg_active)]
    assert now_active["active"] and now_active["traffic"] == "ACTIVE" and tag(now_active) == NEW
    assert now_active["replicas"] == capacity
    assert not now_idle["active"] and now_idle["traffic"] == "preview" and tag(now_idle) == old

    s = step(repo, "switch back", "switch", "--env", "prod-blue-green")
    assert s[("prod-blue-green", bg_active)]["active"] and tag(s[("prod-blue-green", bg_active)]) == old
    assert s[("prod-blue-green", bg_active)]["replicas"] == capacity
    assert tag(s[("prod", "")]) == old  # the rolling prod was never part of this walk
    table = repo.run("status")
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0].split()[:4] == ["ENVIRONMENT", "STRATEGY", "NAMESPACE", "VARIANT"]
    assert any(line.startswith("prod-canary ") and "weight 100%" in line for line in lines)
    assert sum("ACTIVE" in line for line in lines) == 1
