"""Release commits say what they are: every edit a release command makes comes with the
``git commit`` to run, whose trailers record the action, the environment, the variant and the
release now pinned there, and ``make insights`` reads them back from history."""

from __future__ import annotations

import shlex
import subprocess

from release_support import DIGEST_A, GIT_ID, Repo, git

from generator.config import load_config
from generator.insights.gitlog import first_parent_chain
from generator.validate import cli as validate_cli
from generator.validate.release_commits import untold_releases


def commit_as_told(repo: Repo, out: str) -> list[str]:
    """Run the ``git commit`` the command printed; the new commit's trailers."""
    line = next(line for line in out.splitlines() if "next: review" in line)
    words = shlex.split(line.partition("then commit (the trailers say what this release is): ")[2])
    assert words[:4] == ["git", "-C", str(repo.root), "commit"], words
    # Run from elsewhere: the command names the repository itself.
    subprocess.run(["git", *GIT_ID, *words[1:]], cwd=repo.root.parent, check=True, capture_output=True)
    return git(repo.root, "log", "-1", "--format=%(trailers:unfold=true)").strip().splitlines()


def test_promote_into_a_canary_records_the_track_and_its_release(repo: Repo):
    assert repo.run("set-image", "--env", "staging", "--image", "server", "--digest", DIGEST_A).code == 0
    repo.commit("staging build")
    result = repo.run("promote", "--from", "staging", "--to", "prod-canary")
    assert result.code == 0, result.err
    version = repo.versions("prod-canary")["mnist-release-canary"]
    digest = repo.docs("overlays/prod-canary/release.yaml")[1]["data"]["MODEL_DIGEST"]
    model_image = repo.image("prod-canary", "mnist-model-canary")
    trainer = repo.image("prod-canary", "registry.example.com/ml/trainer")
    assert commit_as_told(repo, result.out) == [
        "Release-Action: promote",
        "Release-Env: prod-canary",
        "Release-Variant: canary",
        f"Model-Version: mnist {version}",
        f"Model-Digest: mnist {digest}",
        f"Model-Image: mnist {model_image['newName']}@{model_image['digest']}",
        f"Image-Digest: registry.example.com/ml/inference-server@{DIGEST_A}",
        f"Trainer-Image: registry.example.com/ml/trainer@{trainer['digest']}",
    ]
    assert git(repo.root, "status", "--porcelain").strip() == "", "the printed command commits the whole edit"


def test_a_tag_a_trainer_and_a_canary_abort_say_so(repo: Repo):
    result = repo.run("set-image", "--env", "dev", "--image", "server", "--tag", "1.4.2")
    assert commit_as_told(repo, result.out)[-1] == "Image-Tag: registry.example.com/ml/inference-server:1.4.2"
    result = repo.run("set-image", "--env", "dev", "--image", "trainer", "--digest", DIGEST_A)
    assert commit_as_told(repo, result.out) == [
        "Release-Action: set-image",
        "Release-Env: dev",
        f"Trainer-Image: registry.example.com/ml/trainer@{DIGEST_A}",
    ]
    assert repo.run("set-image", "--env", "prod-canary", "--image", "server", "--digest", DIGEST_A).code == 0
    repo.commit("candidate")
    assert repo.run("canary", "--env", "prod-canary", "--weight", "10").code == 0
    repo.commit("canary 10")
    result = repo.run("canary", "--env", "prod-canary", "--weight", "0")
    assert commit_as_told(repo, result.out)[:4] == [
        "Release-Action: canary",
        "Release-Env: prod-canary",
        "Release-Variant: stable",
        "Release-Weight: 0",  # an abort, told apart from a promotion (100) by its weight
    ]


def test_insights_reads_the_trailers_back_also_through_a_merge(repo: Repo):
    main = git(repo.root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    git(repo.root, "checkout", "-q", "-b", "release")
    result = repo.run("set-image", "--env", "dev", "--image", "server", "--digest", DIGEST_A)
    commit_as_told(repo, result.out)
    head = first_parent_chain(repo.root, "HEAD")[-1]
    assert head.trailer("Release-Action") == ["set-image"] and head.trailer("Release-Env") == ["dev"]
    git(repo.root, "checkout", "-q", main)
    git(repo.root, "merge", "-q", "--no-ff", "-m", "Merge pull request #7 from release", "release")
    merge = first_parent_chain(repo.root, "HEAD")[-1]
    assert len(merge.parents) == 2 and merge.trailer("Release-Env") == ["dev"], "a merge carries what it merges"


def test_validate_notes_a_hand_made_release_in_a_pull_request_and_nothing_else(repo: Repo):
    base = git(repo.root, "rev-parse", "HEAD").strip()
    result = repo.run("set-image", "--env", "dev", "--image", "server", "--digest", DIGEST_A)
    commit_as_told(repo, result.out)  # a release command's commit: says what it is
    path = repo.root / "overlays/staging/kustomization.yaml"
    running = repo.image("staging", "registry.example.com/ml/inference-server")["digest"]
    path.write_text(path.read_text().replace(running, DIGEST_A))
    repo.commit("hand edit: staging runs the new server")
    (repo.root / "overlays/prod/README.note").write_text("not release state\n")
    git(repo.root, "add", "overlays/prod/README.note")
    repo.commit("a note beside prod")
    git(repo.root, "revert", "--no-edit", "HEAD~1")  # a revert says what it is
    platform = load_config(repo.root / "platform.yaml")
    notes = untold_releases(repo.root, platform, base)
    assert len(notes) == 1, notes
    assert "(hand edit: staging runs the new server) changes the release state of staging without" in notes[0]


def test_a_script_that_batches_edits_collects_their_trailers(repo: Repo, monkeypatch, tmp_path):
    """The release workflow's way: two edits, one commit, every trailer once (ML_GITOPS_TRAILERS_FILE)."""
    collected = tmp_path / "trailers"
    monkeypatch.setenv("ML_GITOPS_TRAILERS_FILE", str(collected))
    assert repo.run("set-image", "--env", "dev", "--image", "server", "--digest", DIGEST_A).code == 0
    assert repo.run("set-image", "--env", "dev", "--image", "trainer", "--digest", DIGEST_A, "--allow-dirty").code == 0
    lines = collected.read_text().splitlines()
    assert lines[:2] == ["Release-Action: set-image", "Release-Env: dev"] and len(lines) == len(set(lines))
    assert f"Image-Digest: registry.example.com/ml/inference-server@{DIGEST_A}" in lines
    assert lines[-1] == f"Trainer-Image: registry.example.com/ml/trainer@{DIGEST_A}"


def test_validate_refuses_a_base_that_names_no_commit(repo: Repo, capsys):
    assert validate_cli.main(["--root", str(repo.root), "--base", "origin/nowhere", "--no-secrets"]) == 2
    assert "--base origin/nowhere: no such commit here" in capsys.readouterr().err
