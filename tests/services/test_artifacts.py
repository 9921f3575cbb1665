"""The version digest is what the module docstring promises: sha256sum's manifest, hashed."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from services import artifacts


def _version(tmp_path):
    version = tmp_path / "3"
    (version / "variables").mkdir(parents=True)
    (version / "model.tflite").write_bytes(b"\x00tflite")
    (version / "metadata.json").write_text('{"version": 3}\n')
    (version / "variables" / "variables.index").write_bytes(b"index")
    (version / "Zeta").write_text("upper case sorts first in C order\n")
    return version


def test_digest_is_the_sha256sum_of_the_sha256sum_manifest(tmp_path):
    version = _version(tmp_path)
    shell = subprocess.run(
        "find . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum",
        shell=True,
        cwd=version,
        capture_output=True,
        text=True,
        check=True,
    )
    assert artifacts.digest_directory(version) == "sha256:" + shell.stdout.split()[0]
    assert artifacts.DIGEST_PATTERN.fullmatch(artifacts.digest_directory(version))


def test_any_changed_byte_or_file_changes_the_digest(tmp_path):
    version = _version(tmp_path)
    before = artifacts.digest_directory(version)
    (version / "variables" / "variables.index").write_bytes(b"indeX")
    changed = artifacts.digest_directory(version)
    (version / "extra").write_bytes(b"")
    added = artifacts.digest_directory(version)
    assert len({before, changed, added}) == 3


def test_what_cannot_be_digested_is_named(tmp_path):
    with pytest.raises(artifacts.ArtifactError, match="not a directory"):
        artifacts.digest_directory(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(artifacts.ArtifactError, match="holds no files"):
        artifacts.digest_directory(tmp_path / "empty")
    version = _version(tmp_path)
    os.symlink("/etc/hostname", version / "link")
    with pytest.raises(artifacts.ArtifactError, match="link is not a regular file"):
        artifacts.digest_directory(version)


def test_read_version_keeps_exactly_the_bytes_it_digested(tmp_path):
    version = _version(tmp_path)
    digests, kept = artifacts.read_version(version, lambda relative: relative.startswith("variables/"))
    assert digests == artifacts.file_digests(version)
    assert kept == {"variables/variables.index": b"index"}
    assert hashlib.sha256(kept["variables/variables.index"]).hexdigest() == digests["variables/variables.index"]
    os.mkfifo(version / "pipe")
    with pytest.raises(artifacts.ArtifactError, match="pipe is not a regular file"):
        artifacts.read_version(version, lambda _relative: True)
