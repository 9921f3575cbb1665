"""A model version as an OCI image: built reproducibly, pushed and read back by digest.

The image holds the version directory's files under ``/model/`` and nothing else, in one
uncompressed layer whose tar entries are sorted, owned by 0:0, dated 1970-01-01 and mode 0644
(0755 for directories). Uncompressed because gzip's bytes depend on the zlib build, and a digest
must depend on the model's bytes alone: the same files give the same image digest on any machine
(model weights barely compress anyway). The manifest carries the version digest the server checks
(``services/artifacts.py``) as an annotation, so a reader can tell which files an image holds
without unpacking it.

The image is written as an OCI image layout (``oci-layout``, ``index.json``, ``blobs/``), which
podman, skopeo and buildah read as ``oci:<dir>``; :func:`push` uploads it with the ORAS SDK,
byte for byte, so the registry stores the digest :func:`package` computed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import oras.container
import oras.provider
import requests

from services import artifacts

#: Where the files sit inside the image (an image volume mounts it, an init container copies it).
MODEL_PATH = "model"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
#: Manifest annotations: what the image holds, for a reader that does not unpack it.
MODEL_ANNOTATION = "org.opencontainers.image.title"
VERSION_ANNOTATION = "org.opencontainers.image.version"
DIGEST_ANNOTATION = "io.ml-gitops.model.digest"
REF_NAME = "org.opencontainers.image.ref.name"
#: How long push waits for a registry to answer at all, and (connect, read) for each request.
PROBE_SECONDS = 10
REQUEST_TIMEOUT = (PROBE_SECONDS, 300)


def layout_dir(root: Path, model: str, version: int) -> Path:
    """Where ``make package-model`` writes a version's image layout (git-ignored)."""
    return root / ".cache" / "model-artifacts" / model / str(version)


class ArtifactError(Exception):
    """A version directory or an image layout that cannot be packaged or pushed; the message says why."""


@dataclass(frozen=True)
class Artifact:
    """A packaged model version: its OCI image layout on disk and the manifest's digest."""

    layout: Path
    digest: str  # sha256:... of the manifest: what a pod pins
    model: str
    version: int
    version_digest: str  # the files' digest, as the model card and the server have it


def _canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _descriptor(media_type: str, blob: bytes) -> dict:
    return {"mediaType": media_type, "digest": f"sha256:{hashlib.sha256(blob).hexdigest()}", "size": len(blob)}


def _entry(name: str, directory: bool, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.size = size
    return info


class _Sink:
    """Where tarfile writes the layer: hashed and counted, and kept in a file when there is one."""

    def __init__(self, handle: BinaryIO | None):
        self.handle = handle
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        if self.handle is not None:
            self.handle.write(data)
        return len(data)


class _HashingReader:
    """A file object that hashes what tarfile reads from it."""

    def __init__(self, handle: BinaryIO):
        self.handle = handle
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.sha256.update(chunk)
        return chunk


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def write_layer(version_dir: Path, files: list[str], sink: _Sink) -> dict[str, str]:
    """The layer tar of ``files`` (relative posix paths under ``version_dir``), reproducibly;
    returns the hex sha256 of each file's bytes as they went into the tar."""
    directories = sorted({MODEL_PATH} | {f"{MODEL_PATH}/{p}" for f in files for p in _parents(f)})
    written: dict[str, str] = {}
    # A write-only stream ("w|") needs write() alone; typeshed asks for a whole file object.
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.GNU_FORMAT) as tar:  # type: ignore[call-overload]
        for name in directories:
            tar.addfile(_entry(name + "/", directory=True))
        for rel in sorted(files):
            with (version_dir / rel).open("rb") as handle:
                data = _HashingReader(handle)
                tar.addfile(_entry(f"{MODEL_PATH}/{rel}", False, os.fstat(handle.fileno()).st_size), data)
                written[rel] = data.sha256.hexdigest()
    return written


@dataclass(frozen=True)
class _Image:
    """A packaged version's config and manifest (the layer is streamed to where it goes)."""

    layer_digest: str
    config: bytes
    manifest: bytes
    version_digest: str

    @property
    def digest(self) -> str:
        return str(_descriptor(MANIFEST_TYPE, self.manifest)["digest"])


def _image(version_dir: Path, model: str, version: int, layer_file: BinaryIO | None) -> _Image:
    try:
        digests = artifacts.file_digests(version_dir)
    except artifacts.ArtifactError as exc:
        raise ArtifactError(str(exc)) from exc
    sink = _Sink(layer_file)
    if write_layer(version_dir, list(digests), sink) != digests:
        raise ArtifactError(f"{version_dir} changed while it was packaged")
    layer = {"mediaType": LAYER_TYPE, "digest": f"sha256:{sink.sha256.hexdigest()}", "size": sink.size}
    version_digest = artifacts.version_digest(digests)
    labels = {MODEL_ANNOTATION: model, VERSION_ANNOTATION: str(version)}
    config = _canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
        }
    )
    manifest = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": _descriptor(CONFIG_TYPE, config),
            "layers": [layer],
            "annotations": {**labels, DIGEST_ANNOTATION: version_digest},
        }
    )
    return _Image(str(layer["digest"]), config, manifest, version_digest)


def image_digest(version_dir: Path, model: str, version: int) -> str:
    """The digest :func:`package` gives ``version_dir``, computed without writing anything."""
    return _image(version_dir, model, version, None).digest


def package(version_dir: Path, model: str, version: int, target: Path) -> Artifact:
    """Write ``version_dir`` as an OCI image layout at ``target`` (staged beside it, then moved into
    place); the same files always give the same digest. ArtifactError if the directory cannot be read."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        blobs = staging / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        with (staging / "layer.tar").open("wb") as layer_file:
            image = _image(version_dir, model, version, layer_file)
        (staging / "layer.tar").replace(blob_path(staging, image.layer_digest))
        for blob in (image.config, image.manifest):
            blob_path(staging, _descriptor("", blob)["digest"]).write_bytes(blob)
        manifest = {**_descriptor(MANIFEST_TYPE, image.manifest), "annotations": {REF_NAME: str(version)}}
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [manifest]}
        (staging / "index.json").write_bytes(_canonical(index))
        (staging / "oci-layout").write_bytes(_canonical({"imageLayoutVersion": "1.0.0"}))
        # The old layout moves aside first, so the target is never half written; a cache, not state.
        retired = target.with_name(f".{target.name}-old-{os.getpid()}")
        if target.exists():
            target.replace(retired)
        staging.replace(target)
        shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Artifact(target, image.digest, model, version, image.version_digest)


def read_layout(layout: Path) -> tuple[dict, bytes]:
    """The manifest descriptor and the manifest bytes of a layout :func:`package` wrote."""
    try:
        index = json.loads((layout / "index.json").read_bytes())
        [descriptor] = index["manifests"]
        manifest = (layout / "blobs" / "sha256" / descriptor["digest"].removeprefix("sha256:")).read_bytes()
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{layout} is not a model image layout (make package-model writes one): {exc}") from exc
    return descriptor, manifest


def blob_path(layout: Path, digest: str) -> Path:
    """Where a layout keeps the blob of ``digest``."""
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def auth_files() -> list[str]:
    """The container auth files that exist, as podman and docker find them: ``$REGISTRY_AUTH_FILE``,
    podman's ``$XDG_RUNTIME_DIR/containers/auth.json``, ``$DOCKER_CONFIG/config.json`` (the SDK adds
    ``~/.docker/config.json`` itself)."""
    candidates = [
        os.environ.get("REGISTRY_AUTH_FILE", ""),
        os.path.join(os.environ["XDG_RUNTIME_DIR"], "containers", "auth.json")
        if os.environ.get("XDG_RUNTIME_DIR")
        else "",
        os.path.join(os.environ["DOCKER_CONFIG"], "config.json") if os.environ.get("DOCKER_CONFIG") else "",
    ]
    return [path for path in candidates if path and os.path.isfile(path)]


def push(layout: Path, repository: str, tag: str, *, plain_http: bool = False) -> str:
    """Upload the layout's blobs and manifest to ``repository:tag`` and return the digest the
    registry stored, which is the layout's own (checked). Credentials: :func:`auth_files`. The
    SDK reads each blob into memory whole (its chunked upload does not work with every registry)."""
    descriptor, manifest_bytes = read_layout(layout)
    manifest = json.loads(manifest_bytes)
    container = oras.container.Container(f"{repository}:{tag}")
    registry = oras.provider.Registry(hostname=container.registry, insecure=plain_http)
    # The SDK sets no timeout on its requests: a registry that stops answering would hang the push.
    registry.session.request = functools.partial(registry.session.request, timeout=REQUEST_TIMEOUT)
    registry.auth.load_configs(container, configs=auth_files())
    try:
        # One quick look first: the SDK retries a refused connection for about two minutes.
        requests.get(f"{registry.prefix}://{container.registry}/v2/", timeout=PROBE_SECONDS)
        for blob in [manifest["config"], *manifest["layers"]]:
            response = registry.upload_blob(str(blob_path(layout, blob["digest"])), container, blob)
            _check(response, f"upload of blob {blob['digest']}")
        # The manifest's own bytes, not a re-serialisation: the registry's digest is theirs.
        response = registry.do_request(
            f"{registry.prefix}://{container.manifest_url()}",
            "PUT",
            data=manifest_bytes,
            headers={"Content-Type": MANIFEST_TYPE},
        )
    except requests.RequestException as exc:  # connection refused, timeouts, TLS errors
        raise ArtifactError(
            f"cannot reach {container.registry} ({type(exc).__name__}): is the registry up, and does it speak "
            "HTTPS (PLAIN_HTTP=1 for one that does not)?"
        ) from exc
    except ValueError as exc:  # the SDK's word for a registry that kept answering 500
        raise ArtifactError(str(exc)) from exc
    _check(response, "upload of the manifest")
    stored = response.headers.get("Docker-Content-Digest", descriptor["digest"])
    if stored != descriptor["digest"]:
        raise ArtifactError(f"{container.registry} stored the manifest as {stored}, not {descriptor['digest']}")
    return str(descriptor["digest"])


def _check(response: requests.Response, what: str) -> None:
    if response.status_code not in (200, 201, 202):
        detail = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        raise ArtifactError(f"{what} failed: HTTP {response.status_code} {detail}".rstrip())
