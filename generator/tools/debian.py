"""Binaries from Debian's packages, taken without installing them.

A ``DebianTool`` is a Debian package and the binaries in it that a job needs (promtool and
prometheus for the monitoring tests, the registry server for the model-artifact tests, wrk for
``make bench``), plus the library packages those binaries link that a bare machine may lack (wrk
needs LuaJIT). The packages are fetched with ``apt-get download`` (nothing changes on the system
but apt's download cache) and unpacked with ``dpkg-deb -x``: the binaries into ``.tools/bin``, the
libraries' shared objects into ``.tools/lib``, which an extracted binary then finds through
``LD_LIBRARY_PATH``. Nothing is fetched from anywhere but the package registry.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from generator.files import write_atomic
from generator.paths import TOOLS_BIN, TOOLS_DIR
from generator.tools.base import Binary, Bootstrapped, ToolError

#: Where the shared objects of library packages go.
TOOLS_LIB = TOOLS_DIR / "lib"


@dataclass(frozen=True)
class DebianTool(Bootstrapped):
    """Binaries of one Debian package, and the library packages they need beside them."""

    package: str
    binaries: tuple[Binary, ...]
    #: Packages of shared libraries the binaries link (unpacked into ``.tools/lib``).
    libraries: tuple[str, ...] = ()

    @property
    def record(self) -> Path:
        return TOOLS_DIR / f"{self.package}.json"

    @property
    def origin(self) -> str:
        libraries = f" (and {', '.join(self.libraries)} for its libraries)" if self.libraries else ""
        return f"the Debian package {self.package}{libraries}"

    @property
    def wanted(self) -> str:
        """What a fitting set of binaries is, for messages: ``promtool/prometheus 2.42 or newer, below 3``."""
        versions = {str(binary.versions) for binary in self.binaries}
        if len(versions) == 1:
            return " ".join(["/".join(binary.name for binary in self.binaries), *versions])
        return ", ".join(binary.wanted for binary in self.binaries)

    def environ(self, path: str) -> dict[str, str]:
        """An extracted binary runs with ``.tools/lib`` first on ``LD_LIBRARY_PATH``; others as they are."""
        if not self.libraries or Path(path).parent.resolve() != TOOLS_BIN.resolve():
            return dict(os.environ)
        inherited = os.environ.get("LD_LIBRARY_PATH", "")
        return {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(p for p in (str(TOOLS_LIB), inherited) if p)}

    def extract(self) -> None:
        """Download the packages and unpack the binaries and the libraries' shared objects."""
        packages = (self.package, *self.libraries)
        names = " and ".join(binary.name for binary in self.binaries)
        print(f"tools: extracting {names} from the Debian package(s) {', '.join(packages)}", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix=f"{self.package}-deb-") as tmp:
            for package, deb in self._download(packages, tmp).items():
                unpacked = Path(tmp) / "root" / package
                unpacked.mkdir(parents=True)
                subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True, capture_output=True)
            root = Path(tmp) / "root"
            for binary in self.binaries:
                write_atomic(
                    TOOLS_BIN / binary.name, (root / self.package / "usr" / "bin" / binary.name).read_bytes(), 0o755
                )
            for library in self.libraries:
                for shared in sorted((root / library / "usr" / "lib").rglob("*.so*")):
                    _place_library(shared)

    def _download(self, packages: tuple[str, ...], dest: str) -> dict[str, Path]:
        """``apt-get download`` the packages into ``dest``; refresh apt's lists once if they are missing."""
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            raise ToolError(
                f"no fitting {self.wanted} on PATH, and no apt-get/dpkg-deb to extract it from "
                f"the '{self.package}' package: put {self.wanted} on PATH"
            )
        result = _apt_get(["download", *packages], dest)
        if result.returncode != 0 and os.geteuid() == 0:
            # A fresh machine may have no package lists yet (or stale ones naming a removed version).
            _apt_get(["update"], dest)
            result = _apt_get(["download", *packages], dest)
        debs = {package: list(Path(dest).glob(f"{package}_*.deb")) for package in packages}
        if result.returncode != 0 or any(len(found) != 1 for found in debs.values()):
            hint = "" if os.geteuid() == 0 else " (run 'apt-get update' as root first)"
            raise ToolError(f"apt-get download {' '.join(packages)} failed{hint}:\n{result.stderr.strip()}")
        return {package: found[0] for package, found in debs.items()}


def _apt_get(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    # As root, apt downloads through its unprivileged "_apt" user, which cannot write into a
    # private temporary directory; downloading as root is what it falls back to anyway.
    sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
    return subprocess.run(["apt-get", "-q", *sandbox, *args], capture_output=True, text=True, cwd=cwd)


def _place_library(shared: Path) -> None:
    """Put one shared object (or the symbolic link that gives it its soname) into ``.tools/lib``."""
    target = TOOLS_LIB / shared.name
    if not shared.is_symlink():
        write_atomic(target, shared.read_bytes(), 0o644)
        return
    TOOLS_LIB.mkdir(parents=True, exist_ok=True)
    staged = TOOLS_LIB / f".{shared.name}.{os.getpid()}.partial"
    staged.unlink(missing_ok=True)
    staged.symlink_to(os.readlink(shared))
    staged.replace(target)
