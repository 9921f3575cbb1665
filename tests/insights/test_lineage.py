"""Model lineage on the scripted history: every slot's stretches, a point in time, a digest's
whereabouts, and the command's output."""

from __future__ import annotations

from insights_support import DIGESTS, IMAGES, at

from generator.insights import lineage_cli
from generator.insights.cli import load
from generator.insights.lineage import lineage, select


def rows(scripted, env=None):
    root, _ = scripted
    return lineage(load(root, "HEAD", env, "all", "2026-01-06T00:00Z").history, env)


def test_blue_green_slots_from_commit_to_commit(scripted):
    _, ids = scripted
    got = [(r.variant, r.version, r.traffic, r.from_commit, r.to_commit) for r in rows(scripted, "prod-blue-green")]
    assert got == [
        ("blue", "1", 100, ids["c0"], ids["c15"]),
        ("blue", "1", 0, ids["c15"], ids["c16"]),
        ("blue", "1", 100, ids["c16"], None),
        ("green", "1", 0, ids["c0"], ids["c14"]),
        ("green", "2", 0, ids["c14"], ids["c15"]),
        ("green", "2", 100, ids["c15"], ids["c16"]),
        ("green", "2", 0, ids["c16"], None),
    ]
    green = rows(scripted, "prod-blue-green")[5]
    assert (green.digest, green.model_image, green.accuracy) == (DIGESTS["2"], IMAGES["2"], 0.98)
    assert green.server == "registry.example.com/ml/inference-server:1.0.0"


def test_at_a_time_and_where_a_digest_was_live(scripted):
    _, ids = scripted
    during_canary = select(rows(scripted, "prod-canary"), at=at(14.5))
    assert [(r.variant, r.version, r.traffic) for r in during_canary] == [("canary", "2", 10), ("stable", "1", 90)]
    live = select(rows(scripted), digest=DIGESTS["2"])
    assert [(r.env, r.from_commit, r.traffic) for r in live] == [
        ("dev", ids["c3"], 100),
        ("dev", ids["c8"], 100),
        ("dev", ids["c9"], 100),
        ("staging", ids["c4"], 100),
        ("prod", ids["c5"], 100),
        ("prod", ids["c6"], 100),
        ("prod", ids["c7"], 100),
        ("prod-blue-green", ids["c15"], 100),
        ("prod-canary", ids["c11"], 10),
        ("prod-canary", ids["c12"], 50),
    ]
    assert select(rows(scripted), digest=IMAGES["2"]) == live  # the model image digest finds the same


def test_the_command_prints_the_rows_and_refuses_an_unknown_environment(scripted, capsys):
    root, ids = scripted
    assert lineage_cli.main(["--repo", str(root), "--env", "prod", "--at", "2026-01-05T08:30Z"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert tuple(lines[0].split()) == lineage_cli.HEADER
    assert len(lines) == 2 and "inference-server:1.1.0" in lines[1] and ids["c6"][:8] in lines[1]
    assert ids["c7"][:8] in lines[1] and "0.98" in lines[1]
    assert lineage_cli.main(["--repo", str(root), "--env", "nope"]) == 2
    assert "unknown environment 'nope'" in capsys.readouterr().err
    assert lineage_cli.main(["--repo", str(root), "--model", "sha256:" + "0" * 64]) == 0
    assert capsys.readouterr().out == "lineage: no rows match\n"
