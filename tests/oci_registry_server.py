"""A real OCI registry for the model-artifact tests: the CNCF Distribution server (Debian's
``docker-registry``, bootstrapped by ``generator.tools.oci_registry``) on a free loopback port,
its storage in a temporary directory. The tests start it and stop exactly what they started.

It can ask for credentials the two ways registries do: ``auth="htpasswd"`` (HTTP Basic, checked
by the registry against bcrypt entries made with the C library's ``crypt``), and
``auth="token"`` (Bearer tokens, as Docker Hub, GHCR or Harbor hand them out: the registry sends
clients to a token server, here a small one on loopback that checks the same users and signs
RS256 JSON Web Tokens with ``openssl``; the registry verifies them against its certificate).
With ``redirect_blobs_to``, blob reads are redirected to another server, as registries on S3 do
(:func:`blob_storage_server`: a static file server on the registry's storage, which refuses any
request carrying an Authorization header, as S3 does a presigned URL with one).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
import yaml
from loopback import free_port

from generator.tools.oci_registry import registry_path

TOKEN_SERVICE = "loopback-registry"
TOKEN_ISSUER = "loopback-token-server"


def bcrypt_hash(password: str) -> str | None:
    """A bcrypt hash of ``password`` (what the registry's htpasswd file holds), or None when the
    C library cannot make one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # removed in Python 3.13
            import crypt
    except ImportError:
        return None
    if crypt.METHOD_BLOWFISH not in crypt.methods:
        return None
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))  # cost 4: quick
    return hashed if hashed and hashed.startswith("$2") else None


def blob_data(directory: Path, digest: str) -> Path:
    """Where a registry started on ``directory`` keeps the bytes of a blob (Distribution's layout)."""
    hex_digest = digest.removeprefix("sha256:")
    return directory / "storage/docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _TokenServer(ThreadingHTTPServer):
    """Hands out registry tokens: every requested action to a user whose password is right, none
    to an anonymous client (the registry then answers 401), HTTP 401 for a wrong password."""

    daemon_threads = True

    def __init__(self, port: int, users: Mapping[str, str], key: Path, cert_der: bytes):
        super().__init__(("127.0.0.1", port), _TokenHandler)
        self.users = dict(users)
        self.key = key
        self.cert_der = cert_der
        self.requests: list[tuple[str | None, list[str]]] = []  # (user, scopes) asked for

    def token(self, user: str | None, scopes: list[str]) -> str:
        access = []
        for scope in scopes if user else []:
            kind, name, actions = scope.split(":")[0], ":".join(scope.split(":")[1:-1]), scope.split(":")[-1]
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": user or "",
            "aud": TOKEN_SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        return f"{signing_input}.{_b64url(signature)}"


class _TokenHandler(BaseHTTPRequestHandler):
    server: _TokenServer

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        user = None
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if self.server.users.get(name) != password:
                self._answer(401, {"details": "wrong user name or password"})
                return
            user = name
        scopes = query.get("scope", [])
        self.server.requests.append((user, scopes))
        token = self.server.token(user, scopes)
        self._answer(200, {"token": token, "access_token": token, "expires_in": 300})

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _token_server(directory: Path, users: Mapping[str, str]) -> Iterator[tuple[dict, _TokenServer]]:
    """A token server on loopback and the registry's ``auth.token`` configuration that trusts it."""
    key, cert = directory / "token-key.pem", directory / "token-cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
        + ["-days", "2", "-subj", "/CN=loopback-token-server"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    der = base64.b64decode("".join(line for line in cert.read_text().splitlines() if not line.startswith("-----")))
    server = _TokenServer(free_port(), users, key, der)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = {
            "realm": f"http://127.0.0.1:{server.server_address[1]}/token",
            "service": TOKEN_SERVICE,
            "issuer": TOKEN_ISSUER,
            "rootcertbundle": str(cert),
        }
        yield config, server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass
class BlobStorage:
    """A static file server standing in for a registry's object storage: its base URL, and each
    request it got as (method, path, the Authorization header or None)."""

    url: str
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)


@contextmanager
def blob_storage_server(storage: Path) -> Iterator[BlobStorage]:
    """Serve the files under ``storage`` (a registry's ``rootdirectory``) on another loopback port."""
    storage.mkdir(parents=True, exist_ok=True)
    served = BlobStorage("")

    class Handler(SimpleHTTPRequestHandler):
        def send_head(self):  # type: ignore[no-untyped-def]
            authorization = self.headers.get("Authorization")
            served.requests.append((self.command, self.path, authorization))
            if authorization is not None:
                self.send_error(403, "an Authorization header on a storage URL")
                return None
            return super().send_head()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), partial(Handler, directory=str(storage)))
    served.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def running_registry(
    directory: Path,
    *,
    auth: str | None = None,
    users: Mapping[str, str] | None = None,
    redirect_blobs_to: str | None = None,
) -> Iterator[str]:
    """Serve a registry until the block ends; yields its ``host:port``.

    ``auth``: None (anyone may push and pull), ``"htpasswd"`` (HTTP Basic for ``users``, a
    ``{name: password}`` mapping; needs :func:`bcrypt_hash`) or ``"token"`` (Bearer tokens from a
    token server on loopback for ``users``; anonymous clients get a token without access).
    ``redirect_blobs_to``: a base URL (:func:`blob_storage_server` of ``directory / "storage"``)
    that blob reads are redirected to (Distribution's ``redirect`` storage middleware)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config: dict = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(directory / "storage")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    if redirect_blobs_to:
        config["middleware"] = {"storage": [{"name": "redirect", "options": {"baseurl": redirect_blobs_to}}]}
    with _auth(directory, auth, users or {}) as auth_config:
        if auth_config:
            config["auth"] = auth_config
        (directory / "config.yml").write_text(yaml.safe_dump(config))
        with (directory / "registry.log").open("w") as log:
            # The registry reads REGISTRY_<SECTION>_<KEY> variables as configuration: the client's
            # REGISTRY_AUTH_FILE would be its auth section.
            env = {name: value for name, value in os.environ.items() if not name.startswith("REGISTRY_")}
            proc = subprocess.Popen(
                [registry_path(), "serve", str(directory / "config.yml")], stdout=log, stderr=subprocess.STDOUT, env=env
            )
            try:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        # 401: up, and asking for credentials as configured.
                        if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code in (200, 401):
                            break
                    except requests.ConnectionError:
                        pass
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"the registry did not start:\n{(directory / 'registry.log').read_text()[-2000:]}"
                        )
                    time.sleep(0.1)
                yield f"127.0.0.1:{port}"
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


@contextmanager
def _auth(directory: Path, auth: str | None, users: Mapping[str, str]) -> Iterator[dict]:
    """The registry's ``auth`` configuration for ``auth`` (empty: none), and what serves it."""
    if auth is None:
        yield {}
    elif auth == "htpasswd":
        lines = []
        for name, password in users.items():
            hashed = bcrypt_hash(password)
            if hashed is None:
                raise RuntimeError("no bcrypt from the C library's crypt(): htpasswd needs it")
            lines.append(f"{name}:{hashed}\n")
        (directory / "htpasswd").write_text("".join(lines))
        yield {"htpasswd": {"realm": "loopback-registry", "path": str(directory / "htpasswd")}}
    elif auth == "token":
        with _token_server(directory, users) as (config, _server):
            yield {"token": config}
    else:
        raise ValueError(f"auth must be None, 'htpasswd' or 'token', not {auth!r}")
