"""Exact DORA figures on the scripted history (insights_support.build_history): deployments,
lead times in seconds, failures by cause, restore times, the model's lead times and stage waits."""

from __future__ import annotations

import json

from insights_support import DIGESTS, HOUR, UNTIL

from generator.insights import cli

H = HOUR


def figures(report, env):
    _, doc = report
    return doc["all"] if env == "all" else doc["environments"][env]["figures"]


def seconds(figure):
    return sorted(v["seconds"] for v in figure["values"])


def test_deployments_are_first_parent_commits_that_change_the_release_state(report, scripted):
    _, ids = scripted
    expected = {
        "dev": ["c0", "c3", "c8", "c9"],
        "staging": ["c0", "c4"],
        "prod": ["c0", "c5", "c6", "c7"],  # the merge c5, not the branch commit b2 that changed prod
        "prod-blue-green": ["c0", "c14", "c15", "c16"],
        "prod-canary": ["c0", "c10", "c11", "c12", "c13"],
    }
    for env, names in expected.items():
        deployments = figures(report, env)["deployments"]
        assert deployments["commits"] == [ids[n] for n in names], env
        assert deployments["count"] == len(names)
        assert deployments["perWeek"] == round(len(names) * 7, 6)  # a one-day window
    assert figures(report, "all")["deployments"]["count"] == 19
    assert ids["b2"] not in figures(report, "all")["deployments"]["commits"]


def test_lead_time_counts_every_carried_commit_but_not_the_first_deployment_in_the_window(report, scripted):
    _, ids = scripted
    dev = figures(report, "dev")["leadTime"]
    # c3 carries c1 (1h), c2 (2h), c3; c8 (10h) carries c4, b1, b2, c5, c6, c7, c8; c9 carries itself
    assert seconds(dev) == sorted([2 * H, 1 * H, 0, 5 * H, int(4.75 * H), int(4.5 * H), 4 * H, 2 * H, 1 * H, 0, 0])
    assert dev["quantiles"] == {"p50": 2 * H, "p90": int(4.75 * H)}
    assert ids["c0"] not in {v["commit"] for v in dev["values"]}  # c0 is the first deployment: excluded
    prod = figures(report, "prod")["leadTime"]
    # the merge c5 (6h) carries the branch: b1 authored at 5.25h, b2 at 5.5h
    by_commit = {v["commit"]: v for v in prod["values"]}
    assert by_commit[ids["b1"]] == {"commit": ids["b1"], "deployment": ids["c5"], "seconds": int(0.75 * H)}
    assert by_commit[ids["b2"]]["seconds"] == H // 2
    assert seconds(prod) == [0, 0, 0, H // 2, int(0.75 * H), H, 3 * H, 4 * H, 5 * H]
    assert prod["quantiles"] == {"p50": int(0.75 * H), "p90": 5 * H}
    assert figures(report, "staging")["leadTime"]["quantiles"] == {"p50": 2 * H, "p90": 4 * H}
    assert figures(report, "prod-blue-green")["leadTime"]["quantiles"] == {"p50": 7 * H, "p90": 15 * H}
    assert figures(report, "prod-canary")["leadTime"]["quantiles"] == {"p50": 5 * H, "p90": 11 * H}
    assert figures(report, "all")["leadTime"]["samples"] == 11 + 4 + 9 + 18 + 15


def test_change_failures_revert_rollback_and_canary_abort_each_counted_once(report, scripted):
    _, ids = scripted
    dev = figures(report, "dev")["changeFailureRate"]
    assert (dev["numerator"], dev["denominator"], dev["value"]) == (1, 4, 0.25)
    assert dev["numeratorCommits"] == [ids["c8"]]
    prod = figures(report, "prod")["changeFailureRate"]
    assert (prod["numeratorCommits"], prod["value"]) == ([ids["c6"]], 0.25)
    green = figures(report, "prod-blue-green")["changeFailureRate"]
    assert green["numeratorCommits"] == [ids["c15"]]  # the switch, reverted by a Reverts: trailer
    canary = figures(report, "prod-canary")["changeFailureRate"]
    assert (canary["numerator"], canary["denominator"], canary["value"]) == (0, 5, 0.0)
    assert (canary["caughtByCanary"], canary["caughtByCanaryCommits"]) == (1, [ids["c11"]])
    staging = figures(report, "staging")["changeFailureRate"]
    assert (staging["status"], staging["value"], staging["denominator"]) == ("not enough data", None, 2)
    total = figures(report, "all")["changeFailureRate"]
    assert (total["numerator"], total["denominator"], total["value"]) == (3, 19, round(3 / 19, 6))
    assert total["caughtByCanary"] == 1


def test_time_to_restore_runs_from_the_failed_deployment_to_the_restoring_commit(report, scripted):
    _, ids = scripted
    restores = figures(report, "all")["timeToRestore"]
    assert sorted((v["deployment"], v["restoredBy"], v["cause"], v["seconds"]) for v in restores["values"]) == sorted(
        [
            (ids["c8"], ids["c9"], "rollback", 2 * H),
            (ids["c6"], ids["c7"], "revert", H),
            (ids["c11"], ids["c13"], "canary-abort", 2 * H),
            (ids["c15"], ids["c16"], "revert", 2 * H),
        ]
    )
    assert restores["quantiles"] == {"p50": 2 * H, "p90": 2 * H}
    dev = figures(report, "dev")["timeToRestore"]
    assert (dev["status"], dev["samples"], dev["quantiles"]["p50"]) == ("not enough data", 1, None)


def test_model_lead_time_and_the_wait_between_environments(report):
    model = {env: seconds(figures(report, env)["modelLeadTime"]) for env in ("dev", "staging", "prod")}
    # v1's card was created 1h before c0; v2's at 1.5h, pinned in dev at 3h, staging 5h, prod 6h
    assert model == {"dev": [H, int(1.5 * H)], "staging": [H, int(3.5 * H)], "prod": [H, int(4.5 * H)]}
    assert seconds(figures(report, "prod-canary")["modelLeadTime"]) == [H, int(11.5 * H)]
    waits = {
        env: [(v["version"], v["from"], v["seconds"]) for v in figures(report, env)["stageWait"]["values"]]
        for env in ("staging", "prod", "prod-blue-green", "prod-canary")
    }
    assert waits == {
        "staging": [("1", "dev", 0), ("2", "dev", 2 * H)],
        "prod": [("1", "staging", 0), ("2", "staging", H)],
        "prod-blue-green": [("1", "prod", 0), ("2", "prod", 11 * H)],
        "prod-canary": [("1", "prod-blue-green", 0), ("2", "prod", 7 * H)],
    }
    assert {v["digest"] for v in figures(report, "prod")["stageWait"]["values"]} == {DIGESTS["1"], DIGESTS["2"]}


def test_trailers_name_the_action_and_hand_edits_are_found_by_their_diff(report, scripted):
    _, ids = scripted
    _, doc = report
    rows = {(r["env"], r["commit"]): r for r in doc["deployments"]}
    pinned = rows[("dev", ids["c3"])]
    assert pinned["action"] == "pin-model"
    assert pinned["trailers"] == {
        "Release-Action": ["pin-model"],
        "Release-Env": ["dev"],
        "Model-Version": ["2"],
        "Model-Digest": [DIGESTS["2"]],
    }
    by_hand = rows[("staging", ids["c4"])]
    assert (by_hand["action"], by_hand["trailers"], by_hand["changes"]) == ("release", {}, ["mnist v1 -> v2"])
    assert rows[("prod-blue-green", ids["c16"])]["action"] == "traffic"
    assert rows[("prod-blue-green", ids["c15"])]["failure"] == "revert"
    assert rows[("prod-canary", ids["c12"])]["failure"] is None  # undone with c11, not counted again
    assert rows[("dev", ids["c8"])]["restoreSeconds"] == 2 * H


def test_a_window_that_holds_one_deployment_says_not_enough_data(scripted, tmp_path):
    root, ids = scripted
    code = cli.main(["--repo", str(root), "--since", "2026-01-05T19:00Z", "--until", UNTIL, "--out", str(tmp_path)])
    assert code == 0
    doc = json.loads((tmp_path / "insights.json").read_text())
    green = doc["environments"]["prod-blue-green"]["figures"]
    assert green["deployments"]["commits"] == [ids["c16"]]
    assert green["leadTime"]["samples"] == 0  # the only deployment is the first in the window
    assert doc["all"]["changeFailureRate"]["status"] == "not enough data"
    assert doc["all"]["leadTime"]["quantiles"] == {"p50": None, "p90": None}
