"""A model version as an OCI image (``make package-model``, ``make push-model``): the same files give
the same digest wherever and whenever they are packaged, the image holds the files under ``/model/``
and nothing else, GNU tar and a real registry (Distribution, on loopback) accept it, and the registry
serves back by digest exactly the bytes that were packaged. Every refusal exits 2 and writes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import requests
from oci_registry_server import running_registry
from release_support import MODEL, Repo, git, publish, refuse

from generator.registry.oci import layout_dir
from services import artifacts, model_image

MANIFEST_ACCEPT = {"Accept": model_image.MANIFEST_TYPE}


def layer_members(layout: Path) -> list[tarfile.TarInfo]:
    _, manifest = model_image.read_layout(layout)
    [layer] = json.loads(manifest)["layers"]
    with tarfile.open(model_image.blob_path(layout, layer["digest"])) as tar:
        return tar.getmembers()


def test_the_same_files_give_the_same_digest_however_they_sit_on_disk(store: Path, tmp_path: Path):
    version_dir = publish(store, 2)
    first = model_image.package(version_dir, MODEL, 2, tmp_path / "first")
    # The same bytes written again in another order, with other times, modes and a stray umask.
    copy = tmp_path / "copy" / MODEL / "2"
    for rel in reversed(list(artifacts.file_digests(version_dir))):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(version_dir / rel, copy / rel)
        (copy / rel).chmod(0o600)
        os.utime(copy / rel, (1_700_000_000, 1_700_000_000))
    second = model_image.package(copy, MODEL, 2, tmp_path / "second")
    assert second.digest == first.digest
    assert model_image.image_digest(version_dir, MODEL, 2) == first.digest  # what make register records
    assert sorted(p.name for p in (tmp_path / "first" / "blobs" / "sha256").iterdir()) == sorted(
        p.name for p in (tmp_path / "second" / "blobs" / "sha256").iterdir()
    )
    # One changed byte is another image.
    (copy / "model.tflite").write_bytes(b"other weights\n")
    assert model_image.package(copy, MODEL, 2, tmp_path / "third").digest != first.digest


def test_the_image_holds_the_files_under_model_and_nothing_else(store: Path, tmp_path: Path):
    version_dir = publish(store, 2)
    artifact = model_image.package(version_dir, MODEL, 2, tmp_path / "layout")
    members = layer_members(artifact.layout)
    files = {m.name.removeprefix("model/"): m for m in members if m.isfile()}
    assert set(files) == set(artifacts.file_digests(version_dir))
    assert [m.name for m in members if m.isdir()] == ["model", "model/variables"]
    assert [m.name for m in members] == sorted(m.name for m in members if m.isdir()) + sorted(
        m.name for m in members if m.isfile()
    )
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 0)}
    assert {m.mode for m in members if m.isfile()} == {0o644}
    # GNU tar, a consumer that is not ours, lists and extracts the same files with the same bytes.
    _, manifest = model_image.read_layout(artifact.layout)
    layer = model_image.blob_path(artifact.layout, json.loads(manifest)["layers"][0]["digest"])
    out = tmp_path / "extracted"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(layer), "-C", str(out)], check=True)
    assert artifacts.digest_directory(out / "model") == artifacts.digest_directory(version_dir)
    # The manifest says which files the image holds, as the model card and the server name them.
    annotations = json.loads(manifest)["annotations"]
    assert (
        annotations[model_image.DIGEST_ANNOTATION] == artifacts.digest_directory(version_dir) == artifact.version_digest
    )
    assert (annotations[model_image.MODEL_ANNOTATION], annotations[model_image.VERSION_ANNOTATION]) == (MODEL, "2")


def test_every_blob_is_named_by_its_digest(store: Path, tmp_path: Path):
    artifact = model_image.package(publish(store, 2), MODEL, 2, tmp_path / "layout")
    index = json.loads((artifact.layout / "index.json").read_bytes())
    assert [m["digest"] for m in index["manifests"]] == [artifact.digest]
    for blob in (artifact.layout / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


def test_make_package_model_writes_the_layout_and_prints_its_digest(repo: Repo, store: Path):
    version_dir = publish(store, 3)
    result = repo.run("package-model", "--model-root", str(store))  # the newest version
    assert result.code == 0, result.err
    layout = repo.root / ".cache" / "model-artifacts" / MODEL / "3"
    digest = model_image.read_layout(layout)[0]["digest"]
    assert f"image digest {digest}; files digest {artifacts.digest_directory(version_dir)}" in result.out
    assert git(repo.root, "status", "--porcelain", "--untracked-files=all") == ""  # .cache is ignored


@pytest.mark.parametrize(
    "args, says",
    [
        (["--model", "fashion"], "unknown model 'fashion' (platform.yaml has: mnist)"),
        (["--version", "9"], "does not exist: train it first"),
        (["--version", "007x"], "VERSION must be a positive integer, got '007x'"),
    ],
)
def test_package_model_refuses_what_it_cannot_package(repo: Repo, store: Path, args: list[str], says: str):
    publish(store, 2)
    refuse(repo, "package-model", *args, "--model-root", str(store), says=[says])
    assert not (repo.root / ".cache").exists()


def set_repository(repo: Repo, repository: str) -> None:
    path = repo.root / "platform.yaml"
    text = path.read_text()
    assert "  repository: registry.example.com/ml/models\n" in text
    path.write_text(text.replace("  repository: registry.example.com/ml/models\n", f"  repository: {repository}\n"))
    git(repo.root, "commit", "-q", "-a", "-m", "a registry on loopback")


def test_push_model_stores_exactly_the_packaged_bytes_in_a_real_registry(repo: Repo, store: Path, tmp_path: Path):
    version_dir = publish(store, 2)
    with running_registry(tmp_path / "registry") as host:
        set_repository(repo, f"{host}/ml/models")
        result = repo.run("push-model", "--version", "2", "--model-root", str(store), "--plain-http")
        assert result.code == 0, result.err
        layout = layout_dir(repo.root, MODEL, 2)
        descriptor, manifest = model_image.read_layout(layout)
        assert result.out == f"{host}/ml/models/{MODEL}@{descriptor['digest']}\n"

        base = f"http://{host}/v2/ml/models/{MODEL}"
        by_digest = requests.get(f"{base}/manifests/{descriptor['digest']}", headers=MANIFEST_ACCEPT, timeout=10)
        assert by_digest.status_code == 200 and by_digest.content == manifest
        assert by_digest.headers["Docker-Content-Digest"] == descriptor["digest"]
        by_tag = requests.get(f"{base}/manifests/2", headers=MANIFEST_ACCEPT, timeout=10)
        assert by_tag.headers["Docker-Content-Digest"] == descriptor["digest"]
        for blob in [json.loads(manifest)["config"], *json.loads(manifest)["layers"]]:
            served = requests.get(f"{base}/blobs/{blob['digest']}", timeout=10).content
            assert served == model_image.blob_path(layout, blob["digest"]).read_bytes()
            assert f"sha256:{hashlib.sha256(served).hexdigest()}" == blob["digest"]

        # Pushing the same version again is the same image (the registry already has every blob).
        again = repo.run("push-model", "--version", "2", "--model-root", str(store), "--plain-http")
        assert (again.code, again.out) == (0, result.out)
        assert (
            artifacts.digest_directory(version_dir)
            == json.loads(manifest)["annotations"][model_image.DIGEST_ANNOTATION]
        )


def test_a_push_to_a_registry_that_is_not_there_fails_with_exit_3(repo: Repo, store: Path, tmp_path: Path):
    publish(store, 2)
    with running_registry(tmp_path / "registry") as host:
        pass  # started and stopped: nothing listens on its port any more
    set_repository(repo, f"{host}/ml/models")
    result = repo.run("push-model", "--model-root", str(store), "--plain-http")
    assert result.code == 3
    [line] = result.err.splitlines()
    assert line.startswith(f"push-model: failed: {host}/ml/models/{MODEL}:2: cannot reach {host}")


def test_push_model_without_a_repository_in_platform_yaml_is_refused(repo: Repo, store: Path):
    publish(store, 2)
    path = repo.root / "platform.yaml"
    text = path.read_text()
    start = text.index("modelArtifacts:\n")
    path.write_text(text[:start] + text[text.index("\n\n", start) + 2 :])
    git(repo.root, "commit", "-q", "-a", "-m", "no model registry")
    refuse(repo, "push-model", "--model-root", str(store), says=["modelArtifacts: is required"])


def test_register_from_the_registry_writes_the_card_the_files_would(repo: Repo, store: Path, tmp_path: Path):
    """What a training Job pushed, registered without its files on this machine: the same card
    as registering the files, the image digest included; an unknown tag is the registry's error."""
    publish(store, 2)
    with running_registry(tmp_path / "registry") as host:
        set_repository(repo, f"{host}/ml/models")
        assert repo.run("push-model", "--version", "2", "--model-root", str(store), "--plain-http").code == 0
        result = repo.run("register", "--from-registry", "--version", "2", "--plain-http")
        assert result.code == 0, result.err
        from_registry = (repo.root / "registry/mnist/2.yaml").read_bytes()
        (repo.root / "registry/mnist/2.yaml").unlink()
        assert repo.run("register", "--version", "2", "--model-root", str(store)).code == 0
        assert (repo.root / "registry/mnist/2.yaml").read_bytes() == from_registry
        again = repo.run("register", "--from-registry", "--version", "2", "--plain-http")
        assert again.code == 0 and f"already records {host}/ml/models/{MODEL}:2" in again.out
        missing = repo.run("register", "--from-registry", "--version", "3", "--plain-http")
        assert missing.code == 3 and "no such manifest" in missing.err
        assert not (repo.root / "registry/mnist/3.yaml").exists()
    refuse(repo, "register", "--from-registry", says=["--from-registry needs VERSION"])
