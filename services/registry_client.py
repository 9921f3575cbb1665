"""A small OCI distribution-spec client: push a model image layout, pull a model image by digest.

Standard library only (``http.client``, ``hashlib``, ``json``, ``base64``, ``tarfile``), and on
purpose not ``requests`` or the ORAS SDK: the server and trainer images stay small (this runs in
the server's init container, which has nothing else to do), oras-py reads every blob into memory
and sets no timeout on its requests, and a pull must verify digests while it streams, never
trusting bytes it has not hashed. What it speaks:

- references ``host[:port]/path[:tag|@sha256:<64 hex>]`` (:func:`parse_reference`); the host is
  named, there is no implicit Docker Hub;
- credentials from the container auth files ``podman login`` and ``docker login`` write
  (:func:`auth_files`, :func:`credentials`: ``{"auths": {"host[:port]": {"auth": base64("user:pass")}}}``;
  credential helpers are not run);
- ``WWW-Authenticate: Basic`` (credentials on every request once asked) and ``Bearer`` (a token
  from the realm, with the credentials when there are any, anonymous otherwise);
- redirects of blob reads to other hosts (S3-style storage), which never get the Authorization header;
- a timeout on every request: 10 s to connect, 300 s for each read.

Errors are :class:`services.model_image.ArtifactError`, one line each: :class:`RegistryError` (a
subclass) when the registry cannot be reached or answers with an HTTP error, the plain class for
a bad reference or a bad artifact (a digest mismatch, an unsafe layer, a wrong layer count).
No proxy settings are read (``HTTPS_PROXY``): a registry is reached directly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import json
import os
import re
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

from services import artifacts
from services.contract import DIGEST, IMAGE_TAG
from services.model_image import (
    DIGEST_ANNOTATION,
    LAYER_TYPES,
    MANIFEST_TYPE,
    MODEL_PATH,
    ArtifactError,
    blob_path,
    extract_layer,
    read_layout,
)

#: Seconds to connect (TCP and TLS), and to wait for each read once connected.
CONNECT_SECONDS = 10
READ_SECONDS = 300
#: The manifest types a pull accepts: OCI's, and Docker's schema 2 (the same structure).
DOCKER_MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (MANIFEST_TYPE, DOCKER_MANIFEST_TYPE)
#: The largest manifest read (the distribution spec lets registries refuse bigger ones).
MAX_MANIFEST_BYTES = 4 << 20
#: Where a pull stages its download and unpacking inside the target directory (removed after).
STAGING_PREFIX = ".pull-"
#: How push and pull say how to talk plain HTTP; callers with another setting pass theirs.
PLAIN_HTTP_SETTING = "PLAIN_HTTP=1"

_CHUNK = 1 << 20
_MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_USER_AGENT = "ml-gitops-registry-client/1"
_HOST = (
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"(?P<registry>{_HOST})/(?P<repository>{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{IMAGE_TAG}))?(?:@(?P<digest>{DIGEST}))?"
)
_DIGEST = re.compile(DIGEST)
_CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


class RegistryError(ArtifactError):
    """The registry could not be reached, or answered with an HTTP error; the message names it."""


@dataclass(frozen=True)
class Reference:
    """An image reference: ``registry/repository`` and a tag, a digest or both."""

    registry: str  # host[:port]
    repository: str  # the path in the registry
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        return (
            f"{self.registry}/{self.repository}"
            + (f":{self.tag}" if self.tag else "")
            + (f"@{self.digest}" if self.digest else "")
        )


@dataclass(frozen=True)
class Credentials:
    """A user name and password for one registry, and the auth file they came from."""

    username: str
    password: str
    source: str


def parse_reference(text: str) -> Reference:
    """``host[:port]/path[:tag|@sha256:<64 hex>]`` parsed; ArtifactError when it is not one.
    The host must look like one (a dot, a port or ``localhost``): a bare ``name/path`` would be
    Docker Hub to docker, and this client never guesses a registry."""
    match = _REFERENCE.fullmatch(text)
    registry = match["registry"] if match else ""
    if match is None or not ("." in registry or ":" in registry or registry == "localhost"):
        raise ArtifactError(
            f"{text!r} is not an image reference: host[:port]/path[:tag|@sha256:<64 hex>], "
            "lowercase path, the registry host named"
        )
    return Reference(registry, match["repository"], match["tag"], match["digest"])


def auth_files() -> list[str]:
    """The container auth files that exist, in the order podman and docker read them:
    ``$REGISTRY_AUTH_FILE``, podman's ``$XDG_RUNTIME_DIR/containers/auth.json``,
    ``$DOCKER_CONFIG/config.json``, ``~/.docker/config.json``."""
    environ = os.environ
    candidates = [
        environ.get("REGISTRY_AUTH_FILE", ""),
        os.path.join(environ["XDG_RUNTIME_DIR"], "containers", "auth.json") if environ.get("XDG_RUNTIME_DIR") else "",
        os.path.join(environ["DOCKER_CONFIG"], "config.json") if environ.get("DOCKER_CONFIG") else "",
        os.path.join(os.path.expanduser("~"), ".docker", "config.json"),
    ]
    found: list[str] = []
    for path in candidates:
        if path and os.path.isfile(path) and path not in found:
            found.append(path)
    return found


def _auth_key(key: str) -> str:
    """An ``auths`` key as ``host[:port][/path]``: docker writes ``https://host/v1/``, podman ``host/path``."""
    if "://" in key:
        return urlsplit(key).netloc
    return key.rstrip("/")


def credentials(registry: str, repository: str = "") -> Credentials | None:
    """The credentials the first auth file (:func:`auth_files`) holds for ``registry`` (podman's
    per-repository keys ``host/path`` first, the longest match winning), or None. ArtifactError
    when a file that exists is not an auth file: a broken Secret should say so, not look anonymous."""
    parts = repository.split("/") if repository else []
    wanted = [f"{registry}/{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1)] + [registry]
    for path in auth_files():
        try:
            with open(path, "rb") as handle:
                data = json.load(handle)
            auths = data.get("auths", {}) if isinstance(data, dict) else None
            if not isinstance(auths, dict):
                raise ValueError("no 'auths' object")
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{path}: not a container auth file ({exc})") from exc
        entries = {_auth_key(key): entry for key, entry in auths.items() if isinstance(entry, dict)}
        for key in wanted:
            entry = entries.get(key)
            if entry is None:
                continue
            if entry.get("auth"):
                try:
                    username, colon, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError, TypeError) as exc:
                    raise ArtifactError(f"{path}: auths.{key}.auth is not base64 of user:password") from exc
                if not colon:
                    raise ArtifactError(f"{path}: auths.{key}.auth is not base64 of user:password")
                return Credentials(username, password, path)
            if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
                return Credentials(entry["username"], entry["password"], path)
    return None


def _basic(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    """The scheme (lowercase) and parameters of a ``WWW-Authenticate`` header."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), {m[1].lower(): m[2] if m[2] is not None else m[3] for m in _CHALLENGE_PARAM.finditer(rest)}


def _error_detail(body: bytes) -> str:
    """What a registry's error body says, on one line: its first ``errors[]`` entry, else the text."""
    try:
        first = json.loads(body)["errors"][0]
        text = f"{first.get('code', '')} {first.get('message', '')}"
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        text = body.decode(errors="replace")
    return " ".join(text.split())[:200]


class _Client:
    """One repository of one registry: requests with authentication, redirects and timeouts."""

    def __init__(self, ref: Reference, actions: str, plain_http: bool, plain_http_setting: str):
        self.ref = ref
        self.actions = actions  # the token scope asked for: "pull" or "pull,push"
        self.plain_http = plain_http
        self.plain_http_setting = plain_http_setting
        self.origin = ("http" if plain_http else "https", ref.registry)
        self.authorization = ""
        self.answered_by = ref.registry  # the host of the last response (a redirect may lead elsewhere)
        self._credentials: Credentials | None | bool = False  # False: not looked up yet

    def url(self, path: str) -> str:
        """The registry's URL of ``/v2/<repository>/<path>``."""
        return f"{self.origin[0]}://{self.origin[1]}/v2/{self.ref.repository}/{path}"

    def credentials(self) -> Credentials | None:
        """The registry's credentials from the auth files, looked up once."""
        if self._credentials is False:
            self._credentials = credentials(self.ref.registry, self.ref.repository)
        return self._credentials if isinstance(self._credentials, Credentials) else None

    def _unreachable(self, netloc: str, exc: BaseException) -> RegistryError:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.plain_http:
            hint = f"is the registry up ({self.plain_http_setting}: talking plain HTTP)?"
        else:
            hint = f"is the registry up, and does it speak HTTPS ({self.plain_http_setting} for one that does not)?"
        return RegistryError(f"cannot reach {netloc} ({' '.join(detail.split())[:200]}): {hint}")

    def _exchange(
        self, method: str, url: str, headers: dict[str, str], body: bytes | Path | None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """One request on a fresh connection; its response, headers read, body not."""
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if parts.scheme not in ("http", "https"):
            raise RegistryError(f"{self.ref.registry}: {method} {url!r} is not an HTTP URL (a redirect?)")
        conn: http.client.HTTPConnection | None = None
        with ExitStack() as stack:
            # A file body is streamed in blocksize chunks, never read whole; opening it is local.
            payload = stack.enter_context(body.open("rb")) if isinstance(body, Path) else body
            try:
                if parts.scheme == "https":
                    conn = http.client.HTTPSConnection(
                        parts.netloc, timeout=CONNECT_SECONDS, context=ssl.create_default_context(), blocksize=_CHUNK
                    )
                else:
                    conn = http.client.HTTPConnection(parts.netloc, timeout=CONNECT_SECONDS, blocksize=_CHUNK)
                conn.connect()
                assert conn.sock is not None
                conn.sock.settimeout(READ_SECONDS)  # connected: from now on each read may take this long
                conn.request(method, target, body=payload, headers={"User-Agent": _USER_AGENT, **headers})
                return conn, conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                if conn is not None:
                    conn.close()
                raise self._unreachable(parts.netloc, exc) from exc

    @contextmanager
    def open(
        self, method: str, path_or_url: str, *, headers: dict[str, str] | None = None, body: bytes | Path | None = None
    ) -> Iterator[http.client.HTTPResponse]:
        """The registry's response to ``method path_or_url`` once authenticated (one 401 answered
        per request) and redirected (GET and HEAD); the Authorization header only ever goes to
        the registry's own scheme and host."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        authenticated = False
        for _ in range(_MAX_REDIRECTS + 2):
            parts = urlsplit(url)
            ours = (parts.scheme, parts.netloc) == self.origin
            sent = dict(headers or {})
            if ours and self.authorization:
                sent["Authorization"] = self.authorization
            conn, response = self._exchange(method, url, sent, body)
            try:
                if response.status == 401 and ours and not authenticated:
                    authenticated = True
                    if self._authorize(response.getheader("WWW-Authenticate", "")):
                        continue  # again, with the answer to the challenge (finally closes this one)
                elif response.status in _REDIRECTS and method in ("GET", "HEAD") and response.getheader("Location"):
                    url = urljoin(url, response.getheader("Location", ""))
                    conn.close()
                    continue
                self.answered_by = parts.netloc
                yield response
                return
            finally:
                conn.close()
        raise RegistryError(f"{self.ref.registry}: more than {_MAX_REDIRECTS} redirects for {method} {path_or_url}")

    def _authorize(self, challenge: str) -> bool:
        """Answer a 401's challenge for the next attempt; False when there is nothing to try."""
        scheme, params = _challenge(challenge)
        creds = self.credentials()
        if scheme == "basic":
            if creds is None:
                return False
            self.authorization = _basic(creds)
            return True
        if scheme == "bearer" and params.get("realm"):
            self.authorization = f"Bearer {self._token(params, creds)}"
            return True
        return False

    def _token(self, params: dict[str, str], creds: Credentials | None) -> str:
        """A token from the challenge's realm for this repository's actions (and the scopes the
        challenge names), with the credentials unless they would cross the network in clear."""
        realm = params["realm"]
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"{self.ref.registry} names a token realm that is not HTTP: {realm!r}")
        scopes = params.get("scope", "").split()
        wanted = f"repository:{self.ref.repository}:{self.actions}"
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", scope) for scope in dict.fromkeys([*scopes, wanted])]
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        headers = {}
        if creds is not None and (urlsplit(realm).scheme == "https" or self.plain_http):
            headers["Authorization"] = _basic(creds)
        conn, response = self._exchange("GET", url, headers, None)
        try:
            if response.status != 200:
                raise self.failure(response, f"token request to {realm}", urlsplit(realm).netloc)
            body = response.read(1 << 20)
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(urlsplit(realm).netloc, exc) from exc
        finally:
            conn.close()
        try:
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token realm {realm} answered without a token")
        return token

    def failure(self, response: http.client.HTTPResponse, what: str, host: str = "") -> RegistryError:
        """``what`` failed, and how the registry (or ``host``) answered (:meth:`answer`)."""
        return RegistryError(f"{what} failed: {self.answer(response, host)}")

    def answer(self, response: http.client.HTTPResponse, host: str = "") -> str:
        """An error answer on one line: who answered (the last host asked unless ``host``), the status,
        reason, the error text and, for 401 and 403, whose credentials were sent."""
        try:
            detail = _error_detail(response.read(64 << 10))
        except (OSError, http.client.HTTPException):
            detail = ""
        note = ""
        if response.status in (401, 403):
            creds = self.credentials()
            files = ", ".join(auth_files()) or "no auth file found"
            note = (
                f" (sent the credentials of {creds.username!r} from {creds.source})"
                if creds
                else f" (no credentials for {self.ref.registry} in: {files})"
            )
        return (
            f"{host or self.answered_by} answered HTTP {response.status} {response.reason}"
            + (f": {detail}" if detail else "")
            + note
        )

    def has_blob(self, digest: str) -> bool:
        """Whether the repository already holds the blob (HEAD)."""
        with self.open("HEAD", f"blobs/{digest}") as response:
            if response.status == 200:
                return True
            if response.status == 404:
                return False
            raise self.failure(response, f"look-up of blob {digest} in {self.ref.repository}")

    def upload_blob(self, path: Path, digest: str, size: int) -> None:
        """Upload one blob monolithically: POST for an upload location, PUT the file to it."""
        what = f"upload of blob {digest} to {self.ref.repository}"
        with self.open("POST", "blobs/uploads/", headers={"Content-Length": "0"}) as response:
            if response.status != 202 or not response.getheader("Location"):
                raise self.failure(response, what)
            location = urljoin(self.url("blobs/uploads/"), response.getheader("Location", ""))
        location += ("&" if "?" in location else "?") + urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        with self.open("PUT", location, headers=headers, body=path) as response:
            if response.status not in (201, 204):
                raise self.failure(response, what)

    def put_manifest(self, tag: str, manifest: bytes, media_type: str) -> str | None:
        """PUT the manifest's exact bytes under ``tag``; the digest the registry says it stored."""
        headers = {"Content-Type": media_type, "Content-Length": str(len(manifest))}
        with self.open("PUT", f"manifests/{tag}", headers=headers, body=manifest) as response:
            if response.status not in (200, 201):
                raise self.failure(response, f"upload of the manifest to {self.ref.repository}:{tag}")
            return response.getheader("Docker-Content-Digest")

    def get_manifest(self, digest: str) -> bytes:
        """The bytes the registry answers for the manifest ``digest`` (or a tag; not yet verified)."""
        with self.open("GET", f"manifests/{digest}", headers={"Accept": ", ".join(MANIFEST_TYPES)}) as response:
            if response.status == 404:
                raise RegistryError(f"no such manifest: {self.ref} ({self.answer(response)})")
            if response.status != 200:
                raise self.failure(response, f"pull of the manifest {self.ref}")
            try:
                body = response.read(MAX_MANIFEST_BYTES + 1)
            except (OSError, http.client.HTTPException) as exc:
                raise self._unreachable(self.ref.registry, exc) from exc
        if len(body) > MAX_MANIFEST_BYTES:
            raise ArtifactError(f"{self.ref} answered a manifest larger than {MAX_MANIFEST_BYTES} bytes")
        return body

    def download_blob(self, descriptor: dict, target: Path) -> None:
        """Stream the blob into the new file ``target`` while hashing it; ArtifactError unless its
        digest and size are the descriptor's (no more bytes are read than it declares)."""
        digest, size = descriptor["digest"], descriptor["size"]
        what = f"download of layer {digest} of {self.ref}"
        sha256 = hashlib.sha256()
        received = 0
        with self.open("GET", f"blobs/{digest}") as response, target.open("xb") as out:
            if response.status != 200:
                raise self.failure(response, what)
            while True:
                try:
                    chunk = response.read(min(_CHUNK, size - received + 1))
                except (OSError, http.client.HTTPException) as exc:
                    raise RegistryError(f"{what} failed after {received} bytes: {type(exc).__name__} {exc}") from exc
                if not chunk:
                    break
                received += len(chunk)
                if received > size:
                    raise ArtifactError(f"size mismatch: {self.ref} sent more than the {size} bytes of layer {digest}")
                sha256.update(chunk)
                out.write(chunk)
        if received != size:
            raise ArtifactError(f"size mismatch: {self.ref} sent {received} bytes of layer {digest}, not {size}")
        if f"sha256:{sha256.hexdigest()}" != digest:
            raise ArtifactError(
                f"digest mismatch: {self.ref} answered layer {digest} with bytes of digest sha256:{sha256.hexdigest()}"
            )


def push(
    layout: Path, repository: str, tag: str, *, plain_http: bool = False, plain_http_setting: str = PLAIN_HTTP_SETTING
) -> str:
    """Upload an image layout (:func:`services.model_image.package`) to ``repository:tag`` and return
    its manifest digest, which the registry is checked to have stored. Blobs the repository holds
    are skipped; the others are streamed from disk. Credentials: :func:`auth_files`."""
    descriptor, manifest_bytes = read_layout(layout)
    expected = str(descriptor["digest"])
    if f"sha256:{hashlib.sha256(manifest_bytes).hexdigest()}" != expected:
        raise ArtifactError(f"{layout}: the manifest's bytes are not its digest {expected} (package it again)")
    ref = parse_reference(f"{repository}:{tag}")
    try:
        manifest = json.loads(manifest_bytes)
        blobs = [manifest["config"], *manifest["layers"]]
        sizes = [(blob_path(layout, str(blob["digest"])), str(blob["digest"]), int(blob["size"])) for blob in blobs]
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{layout}: not a model image manifest ({exc})") from exc
    client = _Client(ref, "pull,push", plain_http, plain_http_setting)
    for path, digest, size in sizes:
        try:
            on_disk = path.stat().st_size
        except OSError as exc:
            raise ArtifactError(f"{layout}: blob {digest} is missing (package it again)") from exc
        if on_disk != size:
            raise ArtifactError(f"{layout}: blob {digest} holds {on_disk} bytes, not {size} (package it again)")
        if not client.has_blob(digest):
            client.upload_blob(path, digest, size)
    stored = client.put_manifest(tag, manifest_bytes, str(manifest.get("mediaType", MANIFEST_TYPE)))
    if stored is not None and stored != expected:
        raise RegistryError(f"{ref.registry} stored the manifest as {stored}, not {expected}")
    return expected


def _layer(manifest_bytes: bytes, reference: str) -> tuple[dict, dict]:
    """The one layer's descriptor and the annotations of a model image manifest; ArtifactError
    when it is not one."""
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as exc:
        raise ArtifactError(f"{reference}: the manifest is not JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("schemaVersion") != 2:
        raise ArtifactError(f"{reference}: not an image manifest (schemaVersion 2)")
    media_type = manifest.get("mediaType", MANIFEST_TYPE)
    if media_type not in MANIFEST_TYPES:
        raise ArtifactError(f"{reference}: a {media_type} (an index of several images?), not an image manifest")
    layers = manifest.get("layers")
    if not isinstance(layers, list) or len(layers) != 1:
        count = len(layers) if isinstance(layers, list) else "no list of"
        raise ArtifactError(f"{reference}: {count} layers; a model image has exactly one")
    [layer] = layers
    if not (
        isinstance(layer, dict)
        and layer.get("mediaType") in LAYER_TYPES
        and isinstance(layer.get("digest"), str)
        and _DIGEST.fullmatch(layer["digest"])
        and type(layer.get("size")) is int
        and layer["size"] >= 0
    ):
        raise ArtifactError(
            f"{reference}: the layer is not a sha256 tar layer ({', '.join(sorted(LAYER_TYPES))}): {layer!r}"[:300]
        )
    annotations = manifest.get("annotations")
    return layer, annotations if isinstance(annotations, dict) else {}


def resolve(reference: str, *, plain_http: bool = False, plain_http_setting: str = PLAIN_HTTP_SETTING) -> str:
    """The digest of the manifest a tag names now (``host/path:tag``): what to pull, and pin, by
    digest from then on. The digest is that of the bytes the registry answered."""
    ref = parse_reference(reference)
    if ref.digest is not None:
        return ref.digest
    client = _Client(ref, "pull", plain_http, plain_http_setting)
    manifest_bytes = client.get_manifest(ref.tag or "latest")
    return f"sha256:{hashlib.sha256(manifest_bytes).hexdigest()}"


def pull(reference: str, into: Path, *, plain_http: bool = False, plain_http_setting: str = PLAIN_HTTP_SETTING) -> str:
    """Fetch the model image ``reference`` (by digest: ``host/path@sha256:<64 hex>``) and put its
    files in ``into/model/``, replacing what was there; returns the manifest digest.

    The manifest's bytes must hash to the digest, it must have one tar layer, the layer is
    streamed into a staging directory inside ``into`` while hashed and must match its digest and
    size, and only then is it unpacked (:func:`services.model_image.extract_layer`: regular files
    and directories under ``model/`` only). When the manifest names the files' version digest
    (``io.ml-gitops.model.digest``), the unpacked files must have it. ``into/model`` is replaced
    only after all of that (moved aside, then the new one moved in), so a refused pull leaves it
    as it was; ``into`` itself is never replaced (it may be a volume's root)."""
    ref = parse_reference(reference)
    if ref.digest is None:
        raise ArtifactError(
            f"{reference}: pull names an image by digest ({ref.registry}/{ref.repository}@sha256:<64 hex>), "
            "never by tag: a tag can move"
        )
    client = _Client(ref, "pull", plain_http, plain_http_setting)
    manifest_bytes = client.get_manifest(ref.digest)
    actual = f"sha256:{hashlib.sha256(manifest_bytes).hexdigest()}"
    if actual != ref.digest:
        raise ArtifactError(f"digest mismatch: {reference} answered a manifest with digest {actual}")
    layer, annotations = _layer(manifest_bytes, reference)
    into.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=into))
    try:
        client.download_blob(layer, staging / "layer")
        unpacked = staging / "root"
        unpacked.mkdir()
        try:
            files = extract_layer(staging / "layer", layer["mediaType"], unpacked)
        except ArtifactError as exc:
            raise ArtifactError(f"{reference}: {exc}") from exc
        (staging / "layer").unlink()
        pinned = annotations.get(DIGEST_ANNOTATION)
        if isinstance(pinned, str) and artifacts.version_digest(files) != pinned:
            raise ArtifactError(
                f"digest mismatch: {reference} holds files with digest {artifacts.version_digest(files)}, "
                f"its manifest says {pinned}"
            )
        final = into / MODEL_PATH
        if final.exists() or final.is_symlink():
            final.rename(staging / "replaced")
        (unpacked / MODEL_PATH).rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ref.digest
