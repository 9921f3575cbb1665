"""The model image client of the service images (``services/registry_client.py``) and the server's
fetch init container (``services/fetch_model.py``), against a real registry (Distribution, on
loopback): a pushed version pulls back by digest into exactly the files its model card pins; a
tag, a tampered manifest or layer, a hostile tar and a wrong layer count are refused before
anything reaches ``into/model``; a missing manifest and an unreachable registry say so; Basic
and Bearer authentication work with the container auth files. The CLI runs as the init
container does: a subprocess configured by its environment."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import random
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from oci_registry_server import bcrypt_hash, blob_data, blob_storage_server, running_registry
from svc_helpers import REPO_ROOT

from services import artifacts, model_image, registry_client
from services.model_image import ArtifactError
from services.registry_client import RegistryError

MODEL = "mnist"
ABSENT = "sha256:" + "0" * 64


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch, tmp_path):
    """Credentials come only from what a test writes: not from this machine's auth files."""
    for name in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[str]:
    """One registry for the tests that only push and pull (each to its own repository)."""
    with running_registry(tmp_path_factory.mktemp("registry")) as host:
        yield host


def write_version(root: Path, version: int, *, extra: str = "") -> Path:
    """A version directory as the trainer publishes one (a subdirectory, some binary weights)."""
    version_dir = root / MODEL / str(version)
    (version_dir / "variables").mkdir(parents=True)
    weights = random.Random(version).randbytes(200_000)
    (version_dir / "model.tflite").write_bytes(weights)
    (version_dir / "saved_model.pb").write_bytes(weights[::-1])
    (version_dir / "variables" / "variables.index").write_bytes(b"index %d\n" % version)
    (version_dir / "metadata.json").write_text(json.dumps({"model": MODEL, "version": version, "extra": extra}))
    return version_dir


def packaged(tmp_path: Path, version: int, **kwargs: str) -> model_image.Artifact:
    version_dir = write_version(tmp_path / "models", version, **kwargs)
    return model_image.package(version_dir, MODEL, version, tmp_path / "layouts" / str(version))


def hand_layout(directory: Path, layers: list[tuple[str, bytes]], annotations: dict | None = None) -> Path:
    """An image layout written by hand (``layers``: media type and bytes of each), for what
    :func:`model_image.package` never writes."""
    directory.mkdir(parents=True)
    (directory / "blobs" / "sha256").mkdir(parents=True)

    def blob(data: bytes) -> str:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        model_image.blob_path(directory, digest).write_bytes(data)
        return digest

    config = b'{"architecture":"amd64","os":"linux"}'
    manifest = {
        "schemaVersion": 2,
        "mediaType": model_image.MANIFEST_TYPE,
        "config": {"mediaType": model_image.CONFIG_TYPE, "digest": blob(config), "size": len(config)},
        "layers": [{"mediaType": kind, "digest": blob(data), "size": len(data)} for kind, data in layers],
        **({"annotations": annotations} if annotations else {}),
    }
    data = json.dumps(manifest).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": model_image.MANIFEST_TYPE, "digest": blob(data)}]}
    (directory / "index.json").write_text(json.dumps(index))
    return directory


def tar_of(*entries: tuple[str, bytes | None, bytes]) -> bytes:
    """A tar of ``(name, type, data)`` entries; a link's data is its target."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.type = kind or tarfile.REGTYPE
            if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = data.decode()
                tar.addfile(info)
            elif info.type == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return out.getvalue()


GOOD_FILES = (("model/", tarfile.DIRTYPE, b""), ("model/metadata.json", None, b"{}"))


def auth_file(path: Path, host: str, user: str, password: str) -> Path:
    """A docker/podman auth file holding ``user:password`` for ``host``."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


def pulled_files(into: Path) -> dict[str, bytes]:
    return {p.relative_to(into).as_posix(): p.read_bytes() for p in sorted(into.rglob("*")) if p.is_file()}


# --- push and pull ------------------------------------------------------------------------------


def test_a_pushed_version_pulls_back_as_the_files_its_card_pins(registry: str, tmp_path: Path):
    artifact = packaged(tmp_path, 3)
    repository = f"{registry}/ml/models/roundtrip"
    digest = registry_client.push(artifact.layout, repository, "3", plain_http=True)
    assert digest == artifact.digest  # the digest make register records
    # Again: the registry holds every blob, so only the manifest is put, and it is the same image.
    assert registry_client.push(artifact.layout, repository, "3", plain_http=True) == digest

    into = tmp_path / "fetched"
    assert registry_client.pull(f"{repository}@{digest}", into, plain_http=True) == digest
    assert [p.name for p in into.iterdir()] == ["model"]  # no staging left behind
    assert artifacts.digest_directory(into / "model") == artifact.version_digest
    for path in (into / "model").rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path


def test_a_pull_replaces_the_files_of_an_earlier_one(registry: str, tmp_path: Path):
    repository = f"{registry}/ml/models/replace"
    first, second = packaged(tmp_path, 1), packaged(tmp_path, 2)
    into = tmp_path / "fetched"
    for artifact in (first, second):
        digest = registry_client.push(artifact.layout, repository, str(artifact.version), plain_http=True)
        registry_client.pull(f"{repository}@{digest}", into, plain_http=True)
        assert artifacts.digest_directory(into / "model") == artifact.version_digest
    assert [p.name for p in into.iterdir()] == ["model"]


def test_a_gzip_layer_other_tools_write_is_read_too(registry: str, tmp_path: Path):
    layout = hand_layout(
        tmp_path / "layout", [("application/vnd.oci.image.layer.v1.tar+gzip", gzip.compress(tar_of(*GOOD_FILES)))]
    )
    repository = f"{registry}/ml/models/gzip"
    digest = registry_client.push(layout, repository, "1", plain_http=True)
    registry_client.pull(f"{repository}@{digest}", tmp_path / "fetched", plain_http=True)
    assert pulled_files(tmp_path / "fetched") == {"model/metadata.json": b"{}"}


def test_a_pull_by_tag_is_refused(registry: str, tmp_path: Path):
    with pytest.raises(ArtifactError, match="by digest .*never by tag: a tag can move") as refused:
        registry_client.pull(f"{registry}/ml/models/tagged:3", tmp_path / "fetched", plain_http=True)
    assert not isinstance(refused.value, RegistryError)
    assert not (tmp_path / "fetched").exists()


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("registry.example.com/ml/models/mnist:3", ("registry.example.com", "ml/models/mnist", "3", None)),
        ("127.0.0.1:5000/mnist@" + ABSENT, ("127.0.0.1:5000", "mnist", None, ABSENT)),
        ("localhost/a/b:t@" + ABSENT, ("localhost", "a/b", "t", ABSENT)),
        ("[::1]:5000/a-b/c_d.e", ("[::1]:5000", "a-b/c_d.e", None, None)),
    ],
)
def test_references_parse(text: str, parsed: tuple):
    ref = registry_client.parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == parsed
    assert str(ref) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ml/models/mnist",  # no registry host: docker would guess Docker Hub
        "registry.example.com",
        "registry.example.com/ML/Models",
        "registry.example.com/mnist@sha256:abc",
        "registry.example.com/mnist@md5:" + "0" * 32,
        "registry.example.com/mnist:bad tag",
        "https://registry.example.com/mnist",
    ],
)
def test_what_is_not_a_reference_is_refused(text: str):
    with pytest.raises(ArtifactError, match="is not an image reference"):
        registry_client.parse_reference(text)


def test_a_missing_manifest_is_named(registry: str, tmp_path: Path):
    with pytest.raises(RegistryError) as failed:
        registry_client.pull(f"{registry}/ml/models/nothing@{ABSENT}", tmp_path / "fetched", plain_http=True)
    message = str(failed.value)
    assert message.startswith(f"no such manifest: {registry}/ml/models/nothing@{ABSENT} ({registry} answered HTTP 404")
    assert "\n" not in message
    assert not (tmp_path / "fetched").exists()


def test_a_registry_that_is_not_there_or_speaks_no_tls_is_named(registry: str, tmp_path: Path):
    with running_registry(tmp_path / "gone") as host:
        pass  # started and stopped: nothing listens on its port any more
    with pytest.raises(RegistryError, match=rf"^cannot reach {host} \(ConnectionRefusedError.*PLAIN_HTTP=1") as failed:
        registry_client.pull(f"{host}/ml/models/x@{ABSENT}", tmp_path / "fetched", plain_http=True)
    assert "\n" not in str(failed.value)
    with pytest.raises(RegistryError, match=rf"^cannot reach {host} .*PLAIN_HTTP=1"):
        registry_client.push(packaged(tmp_path, 1).layout, f"{host}/ml/models/x", "1", plain_http=True)
    # HTTPS to a registry without TLS: the hint says how to talk plain HTTP.
    with pytest.raises(RegistryError, match=rf"^cannot reach {registry} \(SSL.*does it speak HTTPS \(PLAIN_HTTP=1"):
        registry_client.pull(f"{registry}/ml/models/x@{ABSENT}", tmp_path / "fetched")


# --- what a pull refuses ---------------------------------------------------------------------------


@pytest.fixture
def own_registry(tmp_path) -> Iterator[tuple[str, Path]]:
    """A registry of the test's own, and its directory (where its blobs can be tampered with)."""
    with running_registry(tmp_path / "registry") as host:
        yield host, tmp_path / "registry"


def previous_pull(into: Path) -> dict[str, bytes]:
    """``into/model`` as an earlier pull left it."""
    (into / "model").mkdir(parents=True)
    (into / "model" / "metadata.json").write_bytes(b"the version served until now\n")
    return pulled_files(into)


def flip_a_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_tampered_layer_is_refused_and_the_served_files_stay(own_registry, tmp_path: Path):
    host, directory = own_registry
    artifact = packaged(tmp_path, 3)
    repository = f"{host}/ml/models/tampered"
    digest = registry_client.push(artifact.layout, repository, "3", plain_http=True)
    [layer] = json.loads(model_image.read_layout(artifact.layout)[1])["layers"]
    flip_a_byte(blob_data(directory, layer["digest"]), layer["size"] // 2)  # the same size, other bytes
    into = tmp_path / "fetched"
    before = previous_pull(into)
    with pytest.raises(ArtifactError, match=rf"^digest mismatch: .* answered layer {layer['digest']} with bytes of"):
        registry_client.pull(f"{repository}@{digest}", into, plain_http=True)
    assert pulled_files(into) == before
    assert [p.name for p in into.iterdir()] == ["model"]


def test_a_tampered_manifest_is_refused(own_registry, tmp_path: Path):
    host, directory = own_registry
    artifact = packaged(tmp_path, 3)
    repository = f"{host}/ml/models/tampered"
    digest = registry_client.push(artifact.layout, repository, "3", plain_http=True)
    manifest = blob_data(directory, digest)
    manifest.write_bytes(manifest.read_bytes().replace(b'"3"', b'"4"'))  # still JSON, another version
    into = tmp_path / "fetched"
    before = previous_pull(into)
    reference = f"{repository}@{digest}"
    with pytest.raises(ArtifactError, match=rf"^digest mismatch: {reference} answered a manifest with digest sha256:"):
        registry_client.pull(reference, into, plain_http=True)
    assert pulled_files(into) == before


HOSTILE = {
    "parent": (("model/", tarfile.DIRTYPE, b""), ("../x", None, b"outside")),
    "parent-inside": (("model/../../x", None, b"outside"),),
    "absolute": (("/model/x", None, b"absolute"),),
    "outside-model": (("etc/passwd", None, b"root::0:0::/:/bin/sh\n"),),
    "symlink": (*GOOD_FILES, ("model/weights", tarfile.SYMTYPE, b"/etc/passwd")),
    "hardlink": (*GOOD_FILES, ("model/weights", tarfile.LNKTYPE, b"model/metadata.json")),
    "device": (*GOOD_FILES, ("model/null", tarfile.CHRTYPE, b"")),
    "fifo": (*GOOD_FILES, ("model/pipe", tarfile.FIFOTYPE, b"")),
    "twice": (*GOOD_FILES, ("model/metadata.json", None, b"other")),
}
SAYS = {
    "parent": "'../x': a '..' component",
    "parent-inside": "'model/../../x': a '..' component",
    "absolute": "'/model/x': an absolute path",
    "outside-model": "'etc/passwd': outside model/",
    "symlink": "'model/weights': a symbolic link to '/etc/passwd'",
    "hardlink": "'model/weights': a hard link",
    "device": "'model/null': neither a regular file nor a directory",
    "fifo": "'model/pipe': neither a regular file nor a directory",
    "twice": "'model/metadata.json': it appears twice",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_layer_is_refused_naming_the_entry(registry: str, tmp_path: Path, case: str):
    layout = hand_layout(tmp_path / "layout", [(model_image.LAYER_TYPE, tar_of(*HOSTILE[case]))])
    repository = f"{registry}/ml/models/hostile-{case}"
    digest = registry_client.push(layout, repository, "1", plain_http=True)
    into = tmp_path / "area" / "fetched"
    with pytest.raises(ArtifactError) as refused:
        registry_client.pull(f"{repository}@{digest}", into, plain_http=True)
    assert not isinstance(refused.value, RegistryError)
    assert f"unsafe layer entry {SAYS[case]}" in str(refused.value)
    assert [p.name for p in into.iterdir()] == []  # nothing in place, no staging left
    assert sorted(p.name for p in (tmp_path / "area").iterdir()) == ["fetched"]  # nothing written beside it


@pytest.mark.parametrize("count", [0, 2])
def test_a_model_image_has_exactly_one_layer(registry: str, tmp_path: Path, count: int):
    layers = [(model_image.LAYER_TYPE, tar_of(*GOOD_FILES, (f"model/{n}", None, b"x"))) for n in range(count)]
    repository = f"{registry}/ml/models/layers-{count}"
    digest = registry_client.push(hand_layout(tmp_path / "layout", layers), repository, "1", plain_http=True)
    with pytest.raises(ArtifactError, match=f": {count} layers; a model image has exactly one"):
        registry_client.pull(f"{repository}@{digest}", tmp_path / "fetched", plain_http=True)
    assert not (tmp_path / "fetched" / "model").exists()


def test_files_that_are_not_the_annotated_version_are_refused(registry: str, tmp_path: Path):
    annotations = {model_image.DIGEST_ANNOTATION: packaged(tmp_path, 3).version_digest}
    layout = hand_layout(tmp_path / "layout", [(model_image.LAYER_TYPE, tar_of(*GOOD_FILES))], annotations)
    repository = f"{registry}/ml/models/annotated"
    digest = registry_client.push(layout, repository, "1", plain_http=True)
    with pytest.raises(ArtifactError, match="^digest mismatch: .* holds files with digest sha256:.*its manifest says"):
        registry_client.pull(f"{repository}@{digest}", tmp_path / "fetched", plain_http=True)
    assert not (tmp_path / "fetched" / "model").exists()


# --- credentials ---------------------------------------------------------------------------------


def test_credentials_come_from_the_auth_files_podman_and_docker_read(tmp_path: Path, monkeypatch):
    def token(user: str) -> dict:
        return {"auth": base64.b64encode(f"{user}:pw-{user}".encode()).decode()}

    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(
        json.dumps({"auths": {"https://registry.example.com/v1/": token("docker"), "other.example": token("x")}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    found = registry_client.credentials("registry.example.com", "ml/models/mnist")
    assert (found.username, found.password, found.source) == ("docker", "pw-docker", str(docker / "config.json"))
    # REGISTRY_AUTH_FILE first; podman's per-repository keys, the longest match winning.
    podman = tmp_path / "auth.json"
    podman.write_text(
        json.dumps(
            {
                "auths": {
                    "registry.example.com": token("host"),
                    "registry.example.com/ml": token("ml"),
                    "registry.example.com/ml/models": {
                        "username": "models",
                        "password": "pw-models",  # pragma: allowlist secret
                    },
                }
            }
        )
    )
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(podman))
    assert registry_client.auth_files() == [str(podman), str(docker / "config.json")]
    assert registry_client.credentials("registry.example.com", "ml/models/mnist").username == "models"
    assert registry_client.credentials("registry.example.com", "ml/other").username == "ml"
    assert registry_client.credentials("registry.example.com", "mnist").username == "host"
    assert registry_client.credentials("other.example").username == "x"
    assert registry_client.credentials("unknown.example") is None
    podman.write_text("{not json")
    with pytest.raises(ArtifactError, match=f"^{podman}: not a container auth file"):
        registry_client.credentials("registry.example.com")


AUTH_MODES = [
    pytest.param(
        "htpasswd",
        marks=pytest.mark.skipif(bcrypt_hash("x") is None, reason="no bcrypt from crypt(): htpasswd needs it"),
    ),
    "token",
]


@pytest.mark.parametrize("auth", AUTH_MODES)
def test_a_registry_that_asks_for_credentials_gets_those_of_the_auth_file(tmp_path: Path, monkeypatch, auth: str):
    artifact = packaged(tmp_path, 3)
    with running_registry(tmp_path / "registry", auth=auth, users={"alice": "s3cret"}) as host:
        repository = f"{host}/ml/models/private"
        with pytest.raises(RegistryError, match=f"answered HTTP 401 .*no credentials for {host}"):
            registry_client.push(artifact.layout, repository, "3", plain_http=True)

        monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file(tmp_path / "auth.json", host, "alice", "s3cret")))
        digest = registry_client.push(artifact.layout, repository, "3", plain_http=True)
        registry_client.pull(f"{repository}@{digest}", tmp_path / "fetched", plain_http=True)
        assert artifacts.digest_directory(tmp_path / "fetched" / "model") == artifact.version_digest

        auth_file(tmp_path / "auth.json", host, "alice", "wrong")
        with pytest.raises(RegistryError, match="answered HTTP 401 .*sent the credentials of 'alice' from"):
            registry_client.pull(f"{repository}@{digest}", tmp_path / "again", plain_http=True)


# --- the init container: python -m services.fetch_model ------------------------------------------------


def fetch(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """``python -m services.fetch_model`` with only ``env`` set (and what a process needs)."""
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path / "home"), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "services.fetch_model"],
        cwd=REPO_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def failed(result: subprocess.CompletedProcess, code: int, says: str) -> None:
    assert (result.returncode, result.stdout) == (code, ""), (result.stdout, result.stderr)
    [line] = result.stderr.splitlines()
    assert line.startswith("fetch_model: ") and says in line, line


@pytest.mark.parametrize(
    "env, says",
    [
        ({}, "MODEL_IMAGE is not set"),
        ({"MODEL_IMAGE": "registry.example.com/ml/models/mnist:3"}, "names a tag, which can move"),
        ({"MODEL_IMAGE": "mnist@" + ABSENT}, "MODEL_IMAGE: 'mnist@sha256:000"),
        (
            {"MODEL_IMAGE": "registry.example.com/mnist@" + ABSENT, "MODEL_REGISTRY_PLAIN_HTTP": "yes please"},
            "MODEL_REGISTRY_PLAIN_HTTP='yes please'",
        ),
        (
            {
                "MODEL_IMAGE": "registry.example.com/mnist@" + ABSENT,
                "REGISTRY_AUTH_FILE": "/nonexistent/.dockerconfigjson",
            },
            "REGISTRY_AUTH_FILE='/nonexistent/.dockerconfigjson' is not a file",
        ),
    ],
)
def test_fetch_refuses_bad_settings_with_exit_2(tmp_path: Path, env: dict, says: str):
    failed(fetch(tmp_path, MODEL_FETCH_DIR=str(tmp_path / "volume"), **env), 2, says)
    assert not (tmp_path / "volume").exists()


def test_fetch_puts_the_files_in_place_once_and_keeps_them_when_the_pod_restarts(tmp_path: Path):
    artifact = packaged(tmp_path, 3)
    volume = tmp_path / "volume"
    volume.mkdir()
    # What an interrupted earlier run may leave: a staging directory and a marker of another image.
    (volume / f"{registry_client.STAGING_PREFIX}old").mkdir()
    (volume / f"{registry_client.STAGING_PREFIX}old" / "layer").write_bytes(b"partial")
    (volume / ".digest").write_text(ABSENT + "\n")
    with running_registry(tmp_path / "registry") as host:
        repository = f"{host}/ml/models/mnist"
        digest = registry_client.push(artifact.layout, repository, "3", plain_http=True)
        image = f"{repository}@{digest}"
        result = fetch(tmp_path, MODEL_IMAGE=image, MODEL_FETCH_DIR=str(volume), MODEL_REGISTRY_PLAIN_HTTP="true")
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        assert result.stdout == f"fetched {image} into {volume}/model (4 files)\n"
        assert artifacts.digest_directory(volume / "model") == artifact.version_digest
        assert sorted(p.name for p in volume.iterdir()) == [".digest", "model"]
        assert (volume / ".digest").read_text() == digest + "\n"
    # The registry is gone: a restarted pod's init container finds its files and asks nobody.
    again = fetch(tmp_path, MODEL_IMAGE=image, MODEL_FETCH_DIR=str(volume), MODEL_REGISTRY_PLAIN_HTTP="1")
    assert (again.returncode, again.stderr) == (0, ""), again.stderr
    assert again.stdout == f"{volume}/model already holds {image} (4 files); nothing fetched\n"
    # Another digest is fetched, and without a registry that fails with exit 3, naming it.
    other = fetch(tmp_path, MODEL_IMAGE=f"{repository}@{ABSENT}", MODEL_FETCH_DIR=str(volume))
    failed(other, 3, f"cannot reach {host}")
    assert "MODEL_REGISTRY_PLAIN_HTTP=1" in other.stderr
    assert not (volume / ".digest").exists()  # the files are no longer known to be a complete pull


def test_fetch_exit_codes_for_what_a_registry_answers(own_registry, tmp_path: Path):
    host, directory = own_registry
    artifact = packaged(tmp_path, 3)
    repository = f"{host}/ml/models/mnist"
    digest = registry_client.push(artifact.layout, repository, "3", plain_http=True)
    settings = {"MODEL_FETCH_DIR": str(tmp_path / "volume"), "MODEL_REGISTRY_PLAIN_HTTP": "1"}

    failed(fetch(tmp_path, MODEL_IMAGE=f"{repository}@{ABSENT}", **settings), 3, "no such manifest")

    hostile = hand_layout(tmp_path / "hostile", [(model_image.LAYER_TYPE, tar_of(*HOSTILE["symlink"]))])
    hostile_digest = registry_client.push(hostile, repository, "hostile", plain_http=True)
    failed(fetch(tmp_path, MODEL_IMAGE=f"{repository}@{hostile_digest}", **settings), 2, SAYS["symlink"])

    [layer] = json.loads(model_image.read_layout(artifact.layout)[1])["layers"]
    flip_a_byte(blob_data(directory, layer["digest"]), 100)
    failed(fetch(tmp_path, MODEL_IMAGE=f"{repository}@{digest}", **settings), 2, "refused: digest mismatch")
    assert not (tmp_path / "volume" / "model").exists() and not (tmp_path / "volume" / ".digest").exists()


@pytest.mark.parametrize("auth", AUTH_MODES)
def test_fetch_uses_the_mounted_pull_secret(tmp_path: Path, monkeypatch, auth: str):
    artifact = packaged(tmp_path, 3)
    with running_registry(tmp_path / "registry", auth=auth, users={"puller": "pw"}) as host:
        repository = f"{host}/ml/models/mnist"
        secret = auth_file(tmp_path / ".dockerconfigjson", host, "puller", "pw")
        monkeypatch.setenv("REGISTRY_AUTH_FILE", str(secret))  # for the push; the CLI gets its own env
        digest = registry_client.push(artifact.layout, repository, "3", plain_http=True)
        settings = {"MODEL_IMAGE": f"{repository}@{digest}", "MODEL_REGISTRY_PLAIN_HTTP": "1"}
        failed(fetch(tmp_path, MODEL_FETCH_DIR=str(tmp_path / "anonymous"), **settings), 3, "HTTP 401")
        result = fetch(tmp_path, MODEL_FETCH_DIR=str(tmp_path / "volume"), REGISTRY_AUTH_FILE=str(secret), **settings)
        assert result.returncode == 0, result.stderr
        assert artifacts.digest_directory(tmp_path / "volume" / "model") == artifact.version_digest


def test_fetch_runs_on_the_standard_library_from_what_the_server_image_copies(tmp_path: Path):
    """The init container has the server image's ``services/`` modules and no more: copied as the
    Dockerfile copies them, with no site-packages (``-S``), it still runs (and refuses no input)."""
    dockerfile = (REPO_ROOT / "services/inference/Dockerfile").read_text()
    [copy] = [line.split()[1:-1] for line in dockerfile.splitlines() if line.endswith(" /app/services/")]
    app = tmp_path / "app"
    (app / "services").mkdir(parents=True)
    for module in copy:
        (app / module).write_bytes((REPO_ROOT / module).read_bytes())
    result = subprocess.run(
        [sys.executable, "-E", "-s", "-S", "-m", "services.fetch_model"],  # the image's WORKDIR is /app
        cwd=app,
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    failed(result, 2, "MODEL_IMAGE is not set")


@pytest.mark.parametrize("auth", AUTH_MODES)
def test_blob_reads_redirected_to_object_storage_carry_no_credentials(tmp_path: Path, monkeypatch, auth: str):
    artifact = packaged(tmp_path, 3)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    directory = tmp_path / "registry"
    with (
        blob_storage_server(directory / "storage") as storage,
        running_registry(directory, auth=auth, users={"alice": "s3cret"}, redirect_blobs_to=storage.url) as host,
    ):
        auth_file(tmp_path / "auth.json", host, "alice", "s3cret")
        repository = f"{host}/ml/models/redirected"
        digest = registry_client.push(artifact.layout, repository, "3", plain_http=True)
        registry_client.pull(f"{repository}@{digest}", tmp_path / "fetched", plain_http=True)
    assert artifacts.digest_directory(tmp_path / "fetched" / "model") == artifact.version_digest
    [layer] = json.loads(model_image.read_layout(artifact.layout)[1])["layers"]
    layer_path = blob_data(Path("/"), layer["digest"]).as_posix().removeprefix("/storage")
    # The layer came from the storage server (which refuses any request with credentials).
    assert ("GET", layer_path, None) in storage.requests
    assert all(authorization is None for _, _, authorization in storage.requests)
