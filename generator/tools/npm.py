"""Executables from an npm package pinned by a lock in the repository.

The directory beside this module holds ``package.json`` and ``package-lock.json``; ``npm ci``
installs exactly that lock into ``.tools/<name>/`` (no scripts, nothing global), once per lock:
a digest of the lock, written last, says the install is complete and current. It needs ``npm`` on
``PATH``, and fetches from the npm registry only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from generator.paths import TOOLS_DIR
from generator.tools.base import Binary, Found, ToolError


@dataclass(frozen=True)
class NpmLock:
    """An npm package (``package``, as ``package.json`` pins it) and the executables it installs."""

    name: str
    directory: Path
    package: str
    binaries: tuple[Binary, ...]

    @property
    def install_dir(self) -> Path:
        return TOOLS_DIR / self.name

    @property
    def version(self) -> str:
        """The version ``package.json`` pins."""
        return str(json.loads((self.directory / "package.json").read_text())["dependencies"][self.package])

    @property
    def origin(self) -> str:
        return f"the npm package {self.package}@{self.version}, by its lock"

    def _lock_digest(self) -> str:
        return hashlib.sha256((self.directory / "package-lock.json").read_bytes()).hexdigest()

    def _executable(self, binary: str) -> Path:
        return self.install_dir / "node_modules" / ".bin" / binary

    def installed(self, binary: str) -> bool:
        """Tell whether the lock is installed, complete and current, with ``binary`` in it."""
        stamp = self.install_dir / ".lock-sha256"
        current = stamp.is_file() and stamp.read_text() == self._lock_digest()
        return current and self._executable(binary).exists()

    def path(self, binary: str) -> Path:
        """The executable, installed from the pinned lock when it is not yet."""
        if not self.installed(binary):
            self._install()
        return self._executable(binary)

    def _install(self) -> None:
        """``npm ci`` the lock in a staging directory under ``.tools/``, then move it into place."""
        staging = Path(tempfile.mkdtemp(prefix=f".{self.name}-", dir=TOOLS_DIR if TOOLS_DIR.is_dir() else None))
        try:
            for file in ("package.json", "package-lock.json"):
                shutil.copy(self.directory / file, staging / file)
            npm = shutil.which("npm")
            if npm is None:
                raise ToolError(f"npm is not on PATH ({self.package} runs on Node.js)")
            proc = subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=staging,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise ToolError(f"npm ci for {self.package} failed: {proc.stderr.strip()[-500:]}")
            (staging / ".lock-sha256").write_text(self._lock_digest())
            TOOLS_DIR.mkdir(exist_ok=True)
            shutil.rmtree(self.install_dir, ignore_errors=True)
            staging.rename(self.install_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def found(self) -> list[Found]:
        """Each executable's status, installing nothing."""
        statuses = []
        for binary in self.binaries:
            if self.installed(binary.name):
                path = self._executable(binary.name)
                statuses.append(Found(binary.name, str(path), binary.probe.version_of(path)))
            else:
                how = f"not here: `python -m generator.tools {binary.name}` installs {self.origin}"
                statuses.append(Found(binary.name, note=how))
        return statuses
