"""wrk, the HTTP load generator of ``make bench``: from PATH when present, else Debian's package.

Debian's ``wrk`` (and the LuaJIT library it links) are fetched with ``apt-get download`` and
unpacked with ``dpkg-deb -x`` into ``.tools/debian/``; nothing is installed system-wide. The
binary is then run with ``LD_LIBRARY_PATH`` pointing at the unpacked library.

Run ``python -m generator.tools.wrk`` to bootstrap it and print the version in use.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from generator.paths import TOOLS_DIR
from generator.tools import ToolError

DEBIAN_DIR = TOOLS_DIR / "debian"
PACKAGES = ("wrk", "libluajit-5.1-2")
BINARY = DEBIAN_DIR / "usr" / "bin" / "wrk"
LIBRARY_DIR = DEBIAN_DIR / "usr" / "lib" / "x86_64-linux-gnu"


@dataclass(frozen=True)
class Wrk:
    """How to run wrk: the binary and the environment it needs."""

    path: str
    env: dict[str, str]

    def version(self) -> str:
        """The first line wrk prints about itself (it has no --version flag; -v prints it)."""
        result = subprocess.run([self.path, "-v"], capture_output=True, text=True, env=self.env, timeout=30)
        return (result.stdout or result.stderr).splitlines()[0].strip()


def _extract_debian_packages(packages: tuple[str, ...], target: Path) -> None:
    """``apt-get download`` the packages and unpack each into ``target`` (no install, no root files)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise ToolError("wrk is not on PATH and apt-get/dpkg-deb are missing: install Debian's 'wrk' package")
    print(f"tools: extracting {', '.join(packages)} from Debian's packages into {target}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="debs-") as tmp:
        result = subprocess.run(["apt-get", "download", *packages], cwd=tmp, capture_output=True, text=True)
        if result.returncode != 0:
            raise ToolError(f"apt-get download {' '.join(packages)} failed (run apt-get update?):\n{result.stderr}")
        staged = Path(tempfile.mkdtemp(prefix=".debian-", dir=target.parent))
        try:
            for deb in sorted(Path(tmp).glob("*.deb")):
                subprocess.run(["dpkg-deb", "-x", str(deb), str(staged)], check=True)
            shutil.rmtree(target, ignore_errors=True)
            staged.replace(target)  # atomic: a killed run leaves no half-unpacked tree
        finally:
            shutil.rmtree(staged, ignore_errors=True)


def wrk() -> Wrk:
    """The wrk to use: PATH first, else the unpacked Debian package (extracted on first use)."""
    on_path = shutil.which("wrk")
    if on_path:
        return Wrk(on_path, dict(os.environ))
    if not BINARY.exists():
        TOOLS_DIR.mkdir(exist_ok=True)
        _extract_debian_packages(PACKAGES, DEBIAN_DIR)
    library_path = os.pathsep.join(p for p in (str(LIBRARY_DIR), os.environ.get("LD_LIBRARY_PATH", "")) if p)
    return Wrk(str(BINARY), {**os.environ, "LD_LIBRARY_PATH": library_path})


def main() -> int:
    """Bootstrap wrk and print the version in use."""
    try:
        tool = wrk()
        print(f"tools: wrk      {tool.version():40} {tool.path}")
    except (ToolError, subprocess.SubprocessError, OSError) as exc:
        print(f"tools: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
