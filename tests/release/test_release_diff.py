"""make diff: render every overlay at a base revision and in the working tree, match resources,
show field changes and flag the risky ones."""

from __future__ import annotations

import shutil

from release_support import DIGEST_A, TAG_A, Repo, git

from generator.release import diff as diff_module
from generator.synthesis.delivery import WEIGHTED_RULE


def risky(repo: Repo, base: str = "HEAD") -> dict[tuple[str, str, str], set[str]]:
    """(overlay, resource title, field path or '') -> risks, from the structured result."""
    _, diffs = diff_module.run_diff(repo.root, base)
    out: dict[tuple[str, str, str], set[str]] = {}
    for d in diffs:
        for c in d.changes:
            if c.risk:
                out.setdefault((d.name, c.title, ""), set()).add(c.risk)
            for f in c.fields:
                if f.risk:
                    out.setdefault((d.name, c.title, f.path), set()).add(f.risk)
    return out


def test_no_change_reports_nothing(repo: Repo):
    result = repo.run("diff", "--base", "HEAD")
    assert result.code == 0, result.err
    assert "0 of 5 overlay(s) changed, 0 risky change(s)" in result.out


def test_image_change_is_flagged(repo: Repo):
    server = "registry.example.com/ml/inference-server"
    before = repo.image("dev", server)["digest"]
    assert repo.run("set-image", "--env", "dev", "--image", "server", "--tag", TAG_A).code == 0
    result = repo.run("diff", "--base", "HEAD")
    assert result.code == 0, result.err
    path = "spec.template.spec.containers[name=server].image"
    line = next(line for line in map(str.strip, result.out.splitlines()) if line.startswith(f"! {path}: "))
    was, now = line.removeprefix(f"! {path}: ").split(" -> ")
    assert f"{server}@{before}".startswith(was.rstrip("…")) and now == f"{server}:{TAG_A}   [! image]"
    assert risky(repo)[("dev", "Deployment ml-dev/mnist-server", path)] == {"image"}
    assert "unchanged: prod, prod-blue-green, prod-canary, staging" in result.out


def test_service_switch_and_workload_selector_changes_are_flagged(repo: Repo):
    assert repo.run("switch", "--env", "prod-blue-green").code == 0
    flags = risky(repo)
    assert flags[("prod-blue-green", "Service ml-prod-blue-green/mnist-server", "spec.selector.slot")] == {
        "Service switch"
    }
    assert flags[("prod-blue-green", "Service ml-prod-blue-green/mnist-server-preview", "spec.selector.slot")] == {
        "Service switch"
    }
    assert {r for (o, t, p), r in flags.items() if p == "spec.replicas" for r in r} == {"replicas"}
    # a Deployment selector change (immutable in Kubernetes) is flagged as a selector change
    scaling = repo.root / "overlays/prod/scaling.yaml"
    scaling.write_text(
        scaling.read_text().replace(
            "spec:\n  template:",
            "spec:\n  selector:\n    matchLabels:\n      tier: gold\n  template:\n"
            "    metadata:\n      labels:\n        tier: gold",
            1,
        )
    )
    flags = risky(repo)
    assert flags[("prod", "Deployment ml-prod/mnist-server", "spec.selector.matchLabels.tier")] == {"selector"}


def test_weight_change_is_flagged_in_text_and_markdown(repo: Repo):
    assert repo.run("set-image", "--env", "prod-canary", "--image", "server", "--digest", DIGEST_A).code == 0
    repo.commit("candidate")
    assert repo.run("canary", "--env", "prod-canary", "--weight", "10").code == 0
    flags = risky(repo)
    for kind in ("HTTPRoute", "GRPCRoute"):  # one traffic.yaml edit moves both routes
        for track in ("canary", "stable"):
            assert flags[
                (
                    "prod-canary",
                    f"{kind} ml-prod-canary/mnist-server",
                    f"spec.rules[{WEIGHTED_RULE}].backendRefs[name=mnist-server-{track}].weight",
                )
            ] == {"weight"}
    md = repo.run("diff", "--base", "HEAD", "--markdown")
    assert md.code == 0
    assert md.out.startswith("### Rendered changes against `HEAD`")
    assert "| Risk | Overlay | Resource | Field | Before | After |" in md.out
    assert (
        "| :warning: weight | prod-canary | HTTPRoute ml-prod-canary/mnist-server | "
        f"`spec.rules[{WEIGHTED_RULE}].backendRefs[name=mnist-server-canary].weight` | `0` | `10` |" in md.out
    )
    assert "<details><summary><b>prod-canary</b>" in md.out and "```diff" in md.out


def test_model_version_matches_configmaps_across_their_hash(repo: Repo):
    path = repo.root / "overlays/staging/release.yaml"
    path.write_text(path.read_text().replace('MODEL_VERSION: "1"', 'MODEL_VERSION: "2"'))
    _, diffs = diff_module.run_diff(repo.root, "HEAD")
    staging = next(d for d in diffs if d.name == "staging")
    ops = {(c.op, c.kind, c.name) for c in staging.changes}
    assert ("~", "ConfigMap", "mnist-release") in ops
    assert not any(c.op in "+-" for c in staging.changes)  # not a removed and an added ConfigMap
    change = next(c for c in staging.changes if c.name == "mnist-release")
    assert [(f.path, f.before, f.after, f.risk) for f in change.fields] == [
        ("data.MODEL_VERSION", "1", "2", "model version")
    ]


def test_a_new_model_image_is_flagged(repo: Repo):
    """The bytes a server pulls changed: the fetch-model init container's MODEL_IMAGE."""
    path = repo.root / "overlays/staging/kustomization.yaml"
    text = path.read_text()
    old = text.split("name: mnist-model\n", 1)[1].split("digest: ", 1)[1].split("\n", 1)[0]
    path.write_text(text.replace(old, "sha256:" + "ab" * 32))
    _, diffs = diff_module.run_diff(repo.root, "HEAD")
    staging = next(d for d in diffs if d.name == "staging")
    risks = {(f.path, f.risk) for c in staging.changes for f in c.fields}
    assert ("spec.template.spec.initContainers[name=fetch-model].env[name=MODEL_IMAGE].value", "model image") in risks


def test_removed_pdb_and_network_policy_are_flagged(repo: Repo):
    kustomization = repo.root / "overlays/prod/kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace(
            "patches:\n",
            (
                "patches:\n"
                "  - patch: |-\n      $patch: delete\n      apiVersion: policy/v1\n      kind: PodDisruptionBudget\n"
                "      metadata:\n        name: mnist-server\n"
                "  - patch: |-\n      $patch: delete\n      apiVersion: networking.k8s.io/v1\n"
                "      kind: NetworkPolicy\n"
                "      metadata:\n        name: mnist-server\n"
            ),
            1,
        )
    )
    flags = risky(repo)
    assert flags[("prod", "PodDisruptionBudget ml-prod/mnist-server", "")] == {"removed PodDisruptionBudget"}
    assert flags[("prod", "NetworkPolicy ml-prod/mnist-server", "")] == {"removed NetworkPolicy"}
    out = repo.run("diff", "--base", "HEAD").out
    assert "- PodDisruptionBudget ml-prod/mnist-server   [! removed PodDisruptionBudget]" in out


def test_new_overlay_committed_history_and_git_state_untouched(repo: Repo):
    assert repo.run("set-image", "--env", "dev", "--image", "server", "--tag", TAG_A).code == 0
    repo.commit("dev build")
    shutil.copytree(repo.root / "overlays/staging", repo.root / "overlays/qa")
    status_before = git(repo.root, "status", "--porcelain")
    worktrees_before = git(repo.root, "worktree", "list")
    result = repo.run("diff", "--base", "HEAD~1")
    assert result.code == 0, result.err
    assert "qa (overlays/qa): new overlay" in result.out
    assert "+ Deployment ml-staging/mnist-server" in result.out
    assert "[! image]" in result.out  # dev's committed change against HEAD~1
    assert git(repo.root, "status", "--porcelain") == status_before
    assert git(repo.root, "worktree", "list") == worktrees_before


def test_a_change_to_the_generated_base_shows_in_every_overlay(repo: Repo):
    # unchanged overlays reuse one render for both sides; a base change must still reach them all
    base = repo.root / "overlays/base/mnist-inference.yaml"
    assert "automountServiceAccountToken: false" in base.read_text()
    base.write_text(
        base.read_text().replace("automountServiceAccountToken: false", "automountServiceAccountToken: true")
    )
    _, diffs = diff_module.run_diff(repo.root, "HEAD")
    changed = {d.name for d in diffs if d.changes}
    # every overlay, trains or only serves, renders the base's ServiceAccount
    assert {"dev", "staging", "prod", "prod-blue-green", "prod-canary"} <= changed


def test_bad_revision_exits_2(repo: Repo):
    result = repo.run("diff", "--base", "no-such-branch")
    assert result.code == 2
    assert "'no-such-branch' is not a revision" in result.err


def test_a_working_tree_that_does_not_build_exits_3_with_the_report(repo: Repo):
    (repo.root / "overlays/dev/kustomization.yaml").write_text("resources:\n  - ../no-such-dir\n")
    result = repo.run("diff", "--base", "HEAD")
    assert result.code == 3
    assert "dev (overlays/dev)" in result.out and "ERROR: the working tree does not build" in result.out


def test_markdown_stays_within_a_github_comment():
    many = [
        diff_module.OverlayDiff(
            f"env{i}",
            [
                diff_module.ResourceChange(
                    "~",
                    "ConfigMap",
                    "ns",
                    f"cm{j}",
                    [diff_module.FieldChange(f"data.k{k}", "a" * 90, "b" * 90) for k in range(20)],
                )
                for j in range(20)
            ],
        )
        for i in range(5)
    ]
    text = diff_module.markdown_report("origin/main", "0" * 40, many)
    assert len(text) <= diff_module.MARKDOWN_LIMIT and "**Truncated**" in text
