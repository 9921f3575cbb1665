"""``make bootstrap`` on a copy of this repository with a real registry on loopback: one real
training, one push, one card, the pins of every environment, one commit; and every pin is an
image the registry serves by digest, whose files are the card's."""

from __future__ import annotations

import re

import yaml
from oci_registry_server import running_registry
from release_support import ENVS, Repo, git, nothing_to_do, status

from generator.registry import cards
from generator.tools import render_overlay
from generator.validate import model_pins
from services import artifacts, registry_client


def use_registry(repo: Repo, host: str) -> None:
    """Point modelArtifacts.repository at the loopback registry, committed (what a user sets first)."""
    path = repo.root / "platform.yaml"
    text = path.read_text()
    path.write_text(re.sub(r"(modelArtifacts:\n  repository: )\S+", rf"\g<1>{host}/ml/models", text))
    repo.commit("model images in the loopback registry")


def model_images(repo: Repo, env: str) -> list[str]:
    """The model image every server Deployment of ``env`` pulls, as rendered."""
    docs = [d for d in yaml.safe_load_all(render_overlay(repo.root / "overlays" / env)) if d]
    pulled = [model_pins.model_image(d["spec"]["template"]["spec"]) for d in docs if d["kind"] == "Deployment"]
    return [reference for _, reference in (p for p in pulled if p)]


def test_bootstrap_leaves_one_commit_whose_pins_every_environment_pulls(repo: Repo, store, tmp_path):
    with running_registry(tmp_path / "registry") as host:
        use_registry(repo, host)
        before = git(repo.root, "rev-parse", "HEAD").strip()
        result = repo.run("bootstrap", "--model-root", str(store), "--plain-http")
        assert result.code == 0, result.err
        assert git(repo.root, "rev-list", "--count", f"{before}..HEAD").strip() == "1"
        assert status(repo) == ""
        changed = set(git(repo.root, "diff", "--name-only", before, "HEAD").split())
        version = cards.registered_versions(repo.root, "mnist")[-1]
        assert changed == {f"registry/mnist/{version}.yaml"} | {
            f"overlays/{env}/{name}" for env in ENVS for name in ("kustomization.yaml", "release.yaml")
        }
        card = cards.read_card(repo.root, "mnist", version)
        assert card.artifact == (f"{host}/ml/models/mnist", card.artifact[1])
        trailers = git(repo.root, "log", "-1", "--format=%(trailers:unfold=true)").strip().splitlines()
        assert trailers == [
            "Release-Action: bootstrap",
            *(f"Release-Env: {env}" for env in ENVS),
            f"Model-Version: mnist {version}",
            f"Model-Digest: mnist {card.digest}",
            f"Model-Image: mnist {card.image}",
        ]
        pulled = 0
        for env in ENVS:
            for reference in model_images(repo, env):
                assert reference == "@".join(card.artifact), env
                into = tmp_path / "pulled" / str(pulled)
                into.mkdir(parents=True)
                registry_client.pull(reference, into, plain_http=True)
                assert artifacts.digest_directory(into / "model") == card.digest
                pulled += 1
        assert pulled == 1 + 1 + 2 + 2  # staging, prod, two slots, two tracks
        # dev's server reads its store, which its training Job fills from the same image: it
        # fetches a pinned version, never retrains it (other bytes, refused by the server).
        docs = [d for d in yaml.safe_load_all(render_overlay(repo.root / "overlays" / "dev")) if d]
        [job] = [d for d in docs if d["kind"] == "Job"]
        env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["MODEL_IMAGE"] == "@".join(card.artifact)
        # Promoting that version further is the pins alone: there is nothing left to copy.
        nothing_to_do(repo, "promote", "--from", "dev", "--to", "staging", says="already runs what dev")


def test_bootstrap_below_a_gate_commits_nothing(repo: Repo, store, tmp_path):
    path = repo.root / "platform.yaml"
    path.write_text(path.read_text().replace("gates: {minAccuracy: 0.96,", "gates: {minAccuracy: 0.999,", 1))
    with running_registry(tmp_path / "registry") as host:
        use_registry(repo, host)
        before, files = git(repo.root, "rev-parse", "HEAD"), repo.snapshot()
        result = repo.run("bootstrap", "--model-root", str(store), "--plain-http")
        assert result.code == 2, result.out
        assert "does not meet the gates of prod" in result.err and "minAccuracy" in result.err
        assert git(repo.root, "rev-parse", "HEAD") == before
        assert repo.snapshot() == files and status(repo) == ""


def test_bootstrap_refuses_a_dirty_tree_before_training(repo: Repo, store):
    (repo.root / "overlays/dev/release.yaml").write_text("# local edit\n")
    result = repo.run("bootstrap", "--model-root", str(store), "--plain-http")
    assert result.code == 2 and "uncommitted changes in overlays/dev/release.yaml" in result.err
    assert not store.exists()
