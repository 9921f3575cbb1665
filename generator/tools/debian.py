"""Binaries the tests run, taken from Debian's packages without installing them.

A tool is a Debian package and the binaries in it that a job needs (promtool and prometheus for
the monitoring tests, the registry server for the model-artifact tests). A binary on PATH is
used when its version fits; otherwise the package is fetched with ``apt-get download`` (nothing
changes on the system but apt's download cache) and unpacked with ``dpkg-deb -x`` into
``.tools/bin``. Nothing is fetched from anywhere but the package registry. The choice is recorded
in ``.tools/<record>.json`` so later runs do no work.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from generator.paths import REPO_ROOT, TOOLS_BIN, TOOLS_DIR
from generator.tools import ToolError


@dataclass(frozen=True)
class DebianTool:
    """Binaries of one Debian package, and which of their versions fit."""

    package: str
    binaries: tuple[str, ...]
    #: The version a binary reports: the first group of this pattern in its ``--version`` output.
    version_pattern: str
    fits: Callable[[str], bool]
    #: What to say a fitting version is, in the error when none fits.
    wanted: str

    @property
    def record(self) -> Path:
        return TOOLS_DIR / f"{self.package}.json"

    def version_of(self, binary: str) -> str | None:
        """The version a binary reports, or None if it cannot run."""
        try:
            out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        found = re.search(self.version_pattern, out.stdout + out.stderr)
        return found[1] if found else None

    def path(self, binary: str) -> str:
        """Path of one of the tool's binaries (bootstrapping the tool on first use)."""
        if self.record.exists():
            record = json.loads(self.record.read_text())
            if all(Path(record.get(b, {}).get("path", "")).exists() for b in self.binaries):
                return str(record[binary]["path"])
        return bootstrap(self)[binary]["path"]


def _apt_get(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    # As root, apt downloads through its unprivileged "_apt" user, which cannot write into a
    # private temporary directory; downloading as root is what it falls back to anyway.
    sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
    return subprocess.run(["apt-get", "-q", *sandbox, *args], capture_output=True, text=True, cwd=cwd)


def _download_package(tool: DebianTool, dest: str) -> Path:
    """``apt-get download <package>`` into ``dest``; refresh apt's lists once if they are missing."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise ToolError(
            f"no fitting {'/'.join(tool.binaries)} ({tool.wanted}) on PATH, and no apt-get/dpkg-deb to extract "
            f"them from the '{tool.package}' package: put {tool.wanted} on PATH"
        )
    result = _apt_get(["download", tool.package], dest)
    if result.returncode != 0 and os.geteuid() == 0:
        # A fresh machine may have no package lists yet (or stale ones naming a removed version).
        _apt_get(["update"], dest)
        result = _apt_get(["download", tool.package], dest)
    debs = list(Path(dest).glob(f"{tool.package}_*.deb"))
    if result.returncode != 0 or len(debs) != 1:
        hint = "" if os.geteuid() == 0 else " (run 'apt-get update' as root first)"
        raise ToolError(f"apt-get download {tool.package} failed{hint}:\n{result.stderr.strip()}")
    return debs[0]


def _extract_from_package(tool: DebianTool, target: Path) -> None:
    """Download the tool's Debian package and unpack its binaries into ``target``."""
    print(f"tools: extracting {' and '.join(tool.binaries)} from the Debian package '{tool.package}'", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix=f"{tool.package}-deb-") as tmp:
        deb = _download_package(tool, tmp)
        unpacked = Path(tmp) / "root"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True, capture_output=True)
        target.mkdir(parents=True, exist_ok=True)
        for binary in tool.binaries:
            staged = target / f".{binary}.partial"
            shutil.copyfile(unpacked / "usr" / "bin" / binary, staged)
            staged.chmod(0o755)
            staged.replace(target / binary)  # atomic: a killed run leaves no half binary


def bootstrap(tool: DebianTool) -> dict[str, dict[str, str]]:
    """Decide which binaries of ``tool`` to use, extracting them if needed, and record it."""
    chosen: dict[str, dict[str, str]] = {}
    missing = []
    for binary in tool.binaries:
        for candidate in (TOOLS_BIN / binary, shutil.which(binary)):
            if candidate and Path(candidate).exists():
                version = tool.version_of(str(candidate))
                if version and tool.fits(version):
                    chosen[binary] = {"path": str(candidate), "version": version}
                    break
        else:
            missing.append(binary)
    if missing:
        _extract_from_package(tool, TOOLS_BIN)
        for binary in missing:
            path = TOOLS_BIN / binary
            version = tool.version_of(str(path))
            if not version or not tool.fits(version):
                raise ToolError(
                    f"{path} from the '{tool.package}' package reports version {version!r}; wanted {tool.wanted}"
                )
            chosen[binary] = {"path": str(path), "version": version}
    TOOLS_DIR.mkdir(exist_ok=True)
    staged = tool.record.with_suffix(".partial")
    staged.write_text(json.dumps(chosen, indent=2, sort_keys=True) + "\n")
    staged.replace(tool.record)
    return chosen


def main(tool: DebianTool) -> int:
    """Bootstrap ``tool`` and print which binaries are in use (exit 2 with one line if it cannot)."""
    try:
        chosen = bootstrap(tool)
    except (ToolError, subprocess.CalledProcessError, OSError) as exc:
        print(f"tools: {exc}", file=sys.stderr)
        return 2
    for binary, info in sorted(chosen.items()):
        print(f"tools: {binary:15} {info['version']:33} {os.path.relpath(info['path'], REPO_ROOT)}")
    return 0
