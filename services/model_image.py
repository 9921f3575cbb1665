"""A model version as an OCI image: built reproducibly, and its layer unpacked safely.

The image holds the version directory's files under ``/model/`` and nothing else, in one
uncompressed layer whose tar entries are sorted, owned by 0:0, dated 1970-01-01 and mode 0644
(0755 for directories). Uncompressed because gzip's bytes depend on the zlib build, and a digest
must depend on the model's bytes alone: the same files give the same image digest on any machine
(model weights barely compress anyway). The manifest carries the version digest the server checks
(``services/artifacts.py``) as an annotation, so a reader can tell which files an image holds
without unpacking it.

The image is written as an OCI image layout (``oci-layout``, ``index.json``, ``blobs/``), which
podman, skopeo and buildah read as ``oci:<dir>``; ``services/registry_client.py`` pushes it byte
for byte, so the registry stores the digest :func:`package` computed, and pulls it back by digest
into a directory with :func:`extract_layer`. Both live under ``services/`` because the images run
them: the trainer packages and pushes what it trained, the server's init container pulls the
pinned version (the generator imports them from here). Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from services import artifacts

#: The digest a Deployment's or a training Job's model image carries until an overlay's ``images:``
#: pins the real one: no image has it, so nothing unpinned is ever pulled (never a ``latest``).
UNPINNED_DIGEST = "sha256:" + "0" * 64


def is_pinned(reference: str) -> bool:
    """Whether ``reference`` names a real image by digest (not the unpinned placeholder)."""
    return "@sha256:" in reference and not reference.endswith(UNPINNED_DIGEST)


#: Where the files sit inside the image (an image volume mounts it, an init container copies it).
MODEL_PATH = "model"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
#: The layer types :func:`extract_layer` reads, with tarfile's stream mode for each: ours
#: (uncompressed), and the gzip-compressed ones other tools (buildah, docker) write.
LAYER_TYPES = {
    LAYER_TYPE: "r|",
    "application/vnd.oci.image.layer.v1.tar+gzip": "r|gz",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "r|gz",
}
#: Manifest annotations: what the image holds, for a reader that does not unpack it.
MODEL_ANNOTATION = "org.opencontainers.image.title"
VERSION_ANNOTATION = "org.opencontainers.image.version"
DIGEST_ANNOTATION = "io.ml-gitops.model.digest"
REF_NAME = "org.opencontainers.image.ref.name"
#: The modes unpacked files and directories get, whatever the archive says (no setuid, no sticky bits).
FILE_MODE = 0o644
DIRECTORY_MODE = 0o755
_CHUNK = 1 << 20


class ArtifactError(Exception):
    """A version directory or an image that cannot be packaged, pushed or unpacked; the message says why."""


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
    info.mode = DIRECTORY_MODE if directory else FILE_MODE
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
    """The digest :func:`package` gives ``version_dir``, computed without writing anything
    (what ``make register`` records in the model card)."""
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


def _refuse(member: tarfile.TarInfo, why: str) -> ArtifactError:
    return ArtifactError(f"unsafe layer entry {member.name!r}: {why}; a model image holds regular files under model/")


def _entry_parts(member: tarfile.TarInfo) -> list[str]:
    """The path components of an entry that may be unpacked, or ArtifactError naming it."""
    if member.name.startswith("/"):
        raise _refuse(member, "an absolute path")
    # tarfile strips a directory's trailing slash, except from a long (GNU or pax) name.
    parts = (member.name.rstrip("/") if member.isdir() else member.name).split("/")
    if ".." in parts:
        raise _refuse(member, "a '..' component")
    if any(part in ("", ".") for part in parts) or "\\" in member.name:
        raise _refuse(member, "not a plain relative path")
    if parts[0] != MODEL_PATH:
        raise _refuse(member, f"outside {MODEL_PATH}/")
    if member.issym() or member.islnk():
        raise _refuse(member, f"a {'symbolic' if member.issym() else 'hard'} link to {member.linkname!r}")
    if member.issparse() or not (member.isreg() or member.isdir()):
        raise _refuse(member, "neither a regular file nor a directory (a device, a FIFO or a sparse file)")
    if member.isreg() and len(parts) == 1:
        raise _refuse(member, f"{MODEL_PATH} itself must be a directory")
    return parts


def extract_layer(layer: Path, media_type: str, target: Path) -> dict[str, str]:
    """Unpack a model image's layer into the empty directory ``target`` (its files end under
    ``target/model/``) and return ``{path under model/: hex sha256}`` of what was written.

    Only what :func:`package` writes is accepted: regular files and directories under ``model/``,
    relative paths without ``..``; links, devices, FIFOs, absolute paths and anything outside
    ``model/`` are refused (ArtifactError naming the entry), so a hostile layer cannot write
    outside ``target`` or plant a link for a later reader to follow. Files get mode 0644 and
    directories 0755 whatever the archive says. On a refusal ``target`` may hold a part: the
    caller unpacks into a staging directory and moves ``target/model`` into place only on success.
    """
    if media_type not in LAYER_TYPES:
        raise ArtifactError(f"layer type {media_type!r} is not one of {', '.join(sorted(LAYER_TYPES))}")
    files: dict[str, str] = {}
    written: set[str] = set()  # the files' paths from target
    directories: set[str] = set()
    try:
        with tarfile.open(layer, mode=LAYER_TYPES[media_type]) as tar:  # type: ignore[call-overload]
            for member in tar:
                parts = _entry_parts(member)
                rel = "/".join(parts)
                if rel in written or (member.isreg() and rel in directories):
                    raise _refuse(member, "it appears twice")
                for depth in range(1, len(parts) + (1 if member.isdir() else 0)):
                    parent = "/".join(parts[:depth])
                    if parent in written:
                        raise _refuse(member, f"{parent!r} is a file")
                    if parent not in directories:
                        os.mkdir(target.joinpath(*parts[:depth]), DIRECTORY_MODE)
                        os.chmod(target.joinpath(*parts[:depth]), DIRECTORY_MODE)  # whatever the umask
                        directories.add(parent)
                if member.isreg():
                    source = tar.extractfile(member)
                    if source is None:  # tarfile answers None for what is not a regular file
                        raise _refuse(member, "unreadable")
                    files[rel.removeprefix(f"{MODEL_PATH}/")] = _write_file(target.joinpath(*parts), source)
                    written.add(rel)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise ArtifactError(f"the layer is not a readable tar archive ({exc})") from exc
    if not files:
        raise ArtifactError(f"the layer holds no files under {MODEL_PATH}/")
    return files


def _write_file(path: Path, source: BinaryIO) -> str:
    """Write ``source`` to the new file ``path`` (never through an existing entry); its hex sha256."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, FILE_MODE)  # whatever the umask
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()
