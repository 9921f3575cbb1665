"""The model-card and model-pin checks of ``make validate`` on a copy of this repository's release
state (platform.yaml, overlays/, registry/): the real files are clean; a tampered digest, a pin
without a card or without its digest, and a card edited by hand, moved or malformed are findings
that name the file, the object and the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from generator.paths import REPO_ROOT
from generator.validate import cli, engine, model_pins, render
from generator.validate.model import Finding

COPIED = ("platform.yaml", "overlays", "registry")
DIGEST_1 = yaml.safe_load((REPO_ROOT / "registry/mnist/1.yaml").read_text())["digest"]
TAMPERED = "sha256:" + "0f" * 32


@pytest.fixture
def root(tmp_path) -> Path:
    dest = tmp_path / "repo"
    dest.mkdir()
    for name in COPIED:
        src = REPO_ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    return dest


def check(root: Path) -> list[Finding]:
    """The two checks as engine.run calls them: every discovered overlay, platform.yaml's environments."""
    return model_pins.findings(root, render.discover_overlays(root), engine.environments(root / "platform.yaml"))


def edit_release(root: Path, env: str, version: str | None = None, digest: str | None = None, *, drop_digest=False):
    """Change MODEL_VERSION / MODEL_DIGEST of every ConfigMap in overlays/<env>/release.yaml, as text."""
    path = root / "overlays" / env / "release.yaml"
    text = path.read_text()
    if version is not None:
        text = text.replace('MODEL_VERSION: "1"', f'MODEL_VERSION: "{version}"')
    if digest is not None:
        text = text.replace(f'MODEL_DIGEST: "{DIGEST_1}"', f'MODEL_DIGEST: "{digest}"')
    if drop_digest:
        text = text.replace(f'  MODEL_DIGEST: "{DIGEST_1}"\n', "")
    assert text != path.read_text()
    path.write_text(text)


def edit_card(root: Path, rel: str = "registry/mnist/1.yaml", **top_level) -> None:
    """Rewrite a card with top-level fields replaced (None deletes one)."""
    path = root / rel
    data = yaml.safe_load(path.read_text())
    for key, value in top_level.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_the_repositorys_cards_and_pins_are_clean(root: Path):
    assert check(root) == []
    assert len(render.discover_overlays(root)) == 5


def test_a_tampered_digest_is_one_finding_naming_file_object_field_version_and_both_digests(root: Path):
    edit_release(root, "prod", digest=TAMPERED)
    found = check(root)
    assert len(found) == 1, found
    (f,) = found
    assert (f.overlay, f.kind, f.name, f.path, f.check) == (
        "overlays/prod/release.yaml",
        "ConfigMap",
        "mnist-release",
        "data.MODEL_DIGEST",
        "model-pin",
    )
    assert f.message == f"mnist v1 is pinned with digest {TAMPERED}, but its card registry/mnist/1.yaml has {DIGEST_1}"


def test_every_variant_of_a_blue_green_overlay_is_checked(root: Path):
    path = root / "overlays/prod-blue-green/release.yaml"
    head, sep, tail = path.read_text().partition("name: mnist-release-green")
    path.write_text(head + sep + tail.replace(DIGEST_1, TAMPERED))
    assert [(f.overlay, f.name, f.path) for f in check(root)] == [
        ("overlays/prod-blue-green/release.yaml", "mnist-release-green", "data.MODEL_DIGEST")
    ]


@pytest.mark.parametrize("drop_digest", [True, False], ids=["without-digest", "with-a-digest"])
def test_a_version_without_a_card_in_a_serve_only_environment(root: Path, drop_digest: bool):
    edit_release(root, "staging", version="7", drop_digest=drop_digest)
    found = check(root)
    assert [(f.overlay, f.name, f.path, f.check) for f in found] == [
        ("overlays/staging/release.yaml", "mnist-release", "data.MODEL_VERSION", "model-pin")
    ]
    assert found[0].message == (
        "mnist v7 has no model card (registry/mnist/7.yaml does not exist): register it (make register) "
        "before pinning it; this environment only serves"
    )


def test_a_digest_less_pin_of_an_unregistered_version_is_a_training_request_only_where_training_runs(root: Path):
    edit_release(root, "dev", version="2", drop_digest=True)  # dev: train: true
    assert check(root) == []
    edit_release(root, "staging", version="2", drop_digest=True)  # staging only serves
    assert [(f.overlay, f.path) for f in check(root)] == [("overlays/staging/release.yaml", "data.MODEL_VERSION")]


def test_a_training_request_with_a_made_up_digest_is_a_finding(root: Path):
    edit_release(root, "dev", version="2", digest=TAMPERED)
    found = check(root)
    assert [(f.overlay, f.path) for f in found] == [("overlays/dev/release.yaml", "data.MODEL_VERSION")]
    assert "registry/mnist/2.yaml does not exist" in found[0].message
    assert "only serves" not in found[0].message


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_a_registered_version_pinned_without_its_digest_names_make_pin_model(root: Path, env: str):
    edit_release(root, env, drop_digest=True)
    found = check(root)
    assert [(f.overlay, f.kind, f.name, f.path, f.check) for f in found] == [
        (f"overlays/{env}/release.yaml", "ConfigMap", "mnist-release", "data.MODEL_DIGEST", "model-pin")
    ]
    assert found[0].message == (f"mnist v1 is pinned without its digest: make pin-model VERSION=1 writes {DIGEST_1}")


def card_findings(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.check == "model-card"]


def assert_pins_point_at_the_invalid_card(found: list[Finding], rel: str = "registry/mnist/1.yaml") -> None:
    """Every release ConfigMap pins v1, so each says its card is not valid (and no other pin finding)."""
    pins = [f for f in found if f.check == "model-pin"]
    assert len(pins) == 7  # dev, staging, prod, and two variants each of prod-blue-green and prod-canary
    assert {f.message for f in pins} == {f"mnist v1: its card {rel} is not valid (see its model-card findings)"}
    assert {f.path for f in pins} == {"data.MODEL_VERSION"}


def test_a_card_whose_file_list_was_edited_is_caught_by_its_digest(root: Path):
    data = yaml.safe_load((root / "registry/mnist/1.yaml").read_text())
    files = dict(data["files"], **{"model.tflite": "ab" * 32})
    edit_card(root, files=files)
    found = check(root)
    (f,) = card_findings(found)
    assert (f.overlay, f.kind, f.path, f.check) == ("registry/mnist/1.yaml", "", "", "model-card")
    assert f.message.startswith(f"digest: {DIGEST_1} is not the digest of the card's files (sha256:")
    assert_pins_point_at_the_invalid_card(found)


def test_a_card_with_a_file_dropped_is_caught_by_its_digest(root: Path):
    data = yaml.safe_load((root / "registry/mnist/1.yaml").read_text())
    data["files"].pop("model.keras")
    edit_card(root, files=data["files"])
    (f,) = card_findings(check(root))
    assert f.overlay == "registry/mnist/1.yaml" and "is not the digest of the card's files" in f.message


def test_a_card_whose_digest_was_edited_is_caught(root: Path):
    edit_card(root, digest=TAMPERED)
    # ... and the overlays, re-pinned to the edited digest, do not make it valid.
    for env in ("dev", "staging", "prod", "prod-blue-green", "prod-canary"):
        path = root / "overlays" / env / "release.yaml"
        path.write_text(path.read_text().replace(DIGEST_1, TAMPERED))
    found = check(root)
    (f,) = card_findings(found)
    assert f.overlay == "registry/mnist/1.yaml"
    assert f.message.startswith(f"digest: {TAMPERED} is not the digest of the card's files ({DIGEST_1})")
    assert_pins_point_at_the_invalid_card(found)


@pytest.mark.parametrize("rel", ["registry/mnist/2.yaml", "registry/fashion/1.yaml"])
def test_a_card_at_the_wrong_path(root: Path, rel: str):
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "registry/mnist/1.yaml", root / rel)
    found = check(root)
    assert [(f.overlay, f.check) for f in found] == [(rel, "model-card")]
    assert found[0].message == "(top level): holds mnist version 1, so it belongs at registry/mnist/1.yaml"


@pytest.mark.parametrize("rel", ["registry/mnist/2.yml", "registry/1.yaml", "registry/mnist/old/1.yaml"])
def test_a_file_where_no_card_can_be_is_named(root: Path, rel: str):
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "registry/mnist/1.yaml", root / rel)
    found = check(root)
    assert [(f.overlay, f.check, f.message) for f in found] == [
        (rel, "model-card", "not a model card path: a card is registry/<model>/<version>.yaml")
    ]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"metrics": {"holdoutAccuracy": 0.97, "holdoutExamples": 1000}}, "holdoutLoss"),
        ({"metrics": {"holdoutAccuracy": 1.5, "holdoutLoss": 0.1, "holdoutExamples": 1000}}, "1.5"),
        ({"digest": "sha256:short"}, "digest"),
        ({"reviewedBy": "someone"}, "reviewedBy"),
        ({"codeRevision": None, "trainerImage": None, "seed": 1}, "seed"),
        ({"created": None}, "created"),
    ],
    ids=["missing-metric", "accuracy-above-1", "bad-digest", "unknown-field", "misplaced-field", "missing-created"],
)
def test_a_card_that_fails_its_schema(root: Path, fields: dict, says: str):
    rel = "registry/mnist/3.yaml"
    shutil.copy2(root / "registry/mnist/1.yaml", root / rel)
    edit_card(root, rel, version=3, **fields)
    found = check(root)
    assert found and all((f.overlay, f.check) == (rel, "model-card") for f in found), found
    assert any(says in f.render() for f in found), found


def test_a_card_that_is_not_yaml(root: Path):
    rel = "registry/mnist/3.yaml"
    (root / rel).write_text("model: mnist\nversion: [3\n")
    found = check(root)
    assert found and all((f.overlay, f.check) == (rel, "model-card") for f in found), found


def test_a_tampered_digest_fails_make_validate_with_exit_code_1(root: Path, capsys):
    args = ["--root", str(root), "--overlay", "prod", "--no-freshness", "--no-secrets", "--no-kubeconform"]
    assert cli.main(args) == 0, capsys.readouterr()
    capsys.readouterr()
    edit_release(root, "prod", digest=TAMPERED)
    assert cli.main(args) == 1
    out = capsys.readouterr().out
    assert (
        f"overlays/prod/release.yaml: ConfigMap/mnist-release: data.MODEL_DIGEST: mnist v1 is pinned with "
        f"digest {TAMPERED}, but its card registry/mnist/1.yaml has {DIGEST_1} [model-pin]"
    ) in out


# --- model-image: what a rendered server pulls ----------------------------------------------------

IMAGE_DIGEST_1 = yaml.safe_load((REPO_ROOT / "registry/mnist/1.yaml").read_text())["artifact"]["digest"]


def image_check(root: Path, overlay: str) -> list[Finding]:
    """The model-image check on one rendered overlay, as engine.run renders it."""
    rendered, _ = render.render_all(root, [root / "overlays" / overlay], with_argocd=False)
    return [f for f in model_pins.findings(root, [], {}, rendered) if f.check == "model-image"]


@pytest.mark.parametrize("overlay", ["staging", "prod-canary"])
def test_the_model_images_the_servers_pull_are_their_cards(root: Path, overlay: str):
    assert image_check(root, overlay) == []


def test_a_model_image_pinned_by_hand_to_other_bytes_is_named_with_the_cards(root: Path):
    path = root / "overlays/staging/kustomization.yaml"
    path.write_text(path.read_text().replace(IMAGE_DIGEST_1, TAMPERED))
    (f,) = image_check(root, "staging")
    assert (f.kind, f.name, f.path) == (
        "Deployment",
        "mnist-server",
        "spec.template.spec.initContainers[0].env[0].value",
    )
    assert f"served from the model image registry.example.com/ml/models/mnist@{TAMPERED}" in f.message
    assert f"records registry.example.com/ml/models/mnist@{IMAGE_DIGEST_1}" in f.message
    assert "make pin-model ENV=staging VERSION=1" in f.message


def test_a_model_image_left_unpinned_is_named(root: Path):
    """No images: entry for a slot's model image: the pod would pull a logical name (`:latest`)."""
    path = root / "overlays/prod-blue-green/kustomization.yaml"
    data = yaml.safe_load(path.read_text())
    data["images"] = [i for i in data["images"] if i["name"] != "mnist-model-green"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    (f,) = image_check(root, "prod-blue-green")
    assert f.name == "mnist-server-green"
    assert "model image mnist-model-green is not pinned by digest" in f.message


def test_a_version_whose_card_has_no_model_image_cannot_be_served_where_servers_pull_one(root: Path):
    edit_card(root, artifact=None)
    found = image_check(root, "prod")
    assert [f.message for f in found] == [
        f"registry/mnist/1.yaml records no model image, so nothing says what "
        f"registry.example.com/ml/models/mnist@{IMAGE_DIGEST_1} holds: serve a version registered with its image"
    ]
    assert image_check(root, "dev") == []  # dev trains: its server reads the model store
