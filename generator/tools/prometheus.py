"""promtool and the prometheus server, for the monitoring tests (``promtool test rules`` on the
generated rules, and a live Prometheus scraping the real model server).

A binary on PATH is used when its version fits; otherwise both are extracted from the Debian (or
Ubuntu) ``prometheus`` package: ``apt-get download`` (no installation, nothing changes on the
system but apt's download cache) and ``dpkg-deb -x`` into ``.tools/bin``. Nothing is fetched from
anywhere but the package registry. The choice is recorded in ``.tools/prometheus.json`` so later
runs do no work.

Run ``python -m generator.tools.prometheus`` to bootstrap and print the versions in use.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from generator.tools import REPO_ROOT, TOOLS_BIN, TOOLS_DIR, ToolError

PACKAGE = "prometheus"
BINARIES = ("promtool", "prometheus")
BINARY_IN_PACKAGE = "usr/bin/{}"
RECORD = TOOLS_DIR / "prometheus.json"
# What "a fitting version" means: Prometheus 2 from 2.42 (Debian bookworm's) on. The rule unit
# tests assume Prometheus 2's range selection (both ends of a range included); 3.x changed it.
MAJOR, MIN_MINOR = 2, 42


def _version_of(binary: str) -> str | None:
    """The version a promtool or prometheus binary reports (``2.42.0``), or None if it cannot run."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\bversion (\d+\.\d+\.\d+)", out.stdout + out.stderr)
    return found[1] if found else None


def fits(version: str) -> bool:
    """Tell whether a reported version is one the monitoring tests are written for."""
    numbers = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if numbers is None:
        return False
    return int(numbers[1]) == MAJOR and int(numbers[2]) >= MIN_MINOR


def _apt_get(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    # As root, apt downloads through its unprivileged "_apt" user, which cannot write into a
    # private temporary directory; downloading as root is what it falls back to anyway.
    sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
    return subprocess.run(["apt-get", "-q", *sandbox, *args], capture_output=True, text=True, cwd=cwd)


def _download_package(dest: str) -> Path:
    """``apt-get download prometheus`` into ``dest``; refresh apt's lists once if they are missing."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise ToolError(
            f"no fitting promtool/prometheus ({MAJOR}.{MIN_MINOR}+) on PATH, and no apt-get/dpkg-deb to extract "
            f"them from the '{PACKAGE}' package: put Prometheus {MAJOR}.x on PATH"
        )
    result = _apt_get(["download", PACKAGE], dest)
    if result.returncode != 0 and os.geteuid() == 0:
        # A fresh machine may have no package lists yet (or stale ones naming a removed version).
        _apt_get(["update"], dest)
        result = _apt_get(["download", PACKAGE], dest)
    debs = list(Path(dest).glob(f"{PACKAGE}_*.deb"))
    if result.returncode != 0 or len(debs) != 1:
        hint = "" if os.geteuid() == 0 else " (run 'apt-get update' as root first)"
        raise ToolError(f"apt-get download {PACKAGE} failed{hint}:\n{result.stderr.strip()}")
    return debs[0]


def _extract_from_package(target: Path) -> None:
    """Download Debian's ``prometheus`` package and unpack promtool and prometheus into ``target``."""
    print(f"tools: extracting {' and '.join(BINARIES)} from the Debian package '{PACKAGE}'", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="prometheus-deb-") as tmp:
        deb = _download_package(tmp)
        unpacked = Path(tmp) / "root"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True, capture_output=True)
        target.mkdir(parents=True, exist_ok=True)
        for tool in BINARIES:
            staged = target / f".{tool}.partial"
            shutil.copyfile(unpacked / BINARY_IN_PACKAGE.format(tool), staged)
            staged.chmod(0o755)
            staged.replace(target / tool)  # atomic: a killed run leaves no half binary


def bootstrap() -> dict[str, dict[str, str]]:
    """Decide which promtool and prometheus to use, extracting them if needed, and record it."""
    chosen: dict[str, dict[str, str]] = {}
    missing = []
    for tool in BINARIES:
        for candidate in (TOOLS_BIN / tool, shutil.which(tool)):
            if candidate and Path(candidate).exists():
                version = _version_of(str(candidate))
                if version and fits(version):
                    chosen[tool] = {"path": str(candidate), "version": version}
                    break
        else:
            missing.append(tool)
    if missing:
        _extract_from_package(TOOLS_BIN)
        for tool in missing:
            path = TOOLS_BIN / tool
            version = _version_of(str(path))
            if not version or not fits(version):
                raise ToolError(f"{path} from the '{PACKAGE}' package reports version {version!r}, which does not fit")
            chosen[tool] = {"path": str(path), "version": version}
    TOOLS_DIR.mkdir(exist_ok=True)
    staged = RECORD.with_suffix(".partial")
    staged.write_text(json.dumps(chosen, indent=2, sort_keys=True) + "\n")
    staged.replace(RECORD)
    _record.cache_clear()
    return chosen


@lru_cache(maxsize=1)
def _record() -> dict[str, dict[str, str]]:
    if RECORD.exists():
        record = json.loads(RECORD.read_text())
        if all(Path(record.get(t, {}).get("path", "")).exists() for t in BINARIES):
            return record
    return bootstrap()


def promtool_path() -> str:
    """Path of the promtool binary to use (bootstrapping it on first use)."""
    return _record()["promtool"]["path"]


def prometheus_path() -> str:
    """Path of the prometheus server binary to use (bootstrapping it on first use)."""
    return _record()["prometheus"]["path"]


def main() -> int:
    """Bootstrap promtool and prometheus and print which ones are in use."""
    try:
        chosen = bootstrap()
    except (ToolError, subprocess.CalledProcessError, OSError) as exc:
        print(f"tools: {exc}", file=sys.stderr)
        return 2
    for tool, info in sorted(chosen.items()):
        print(f"tools: {tool:10} {info['version']:38} {os.path.relpath(info['path'], REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
