"""Give pip inside an image build the same index configuration as the builder's own pip.

Read with ``pip config list`` (files and ``PIP_*`` variables, later ones winning, as pip does),
then translated for the build: index URLs that name a network location, trusted hosts, timeouts
and retries are kept; ``cert`` (a CA bundle, as behind a TLS-inspecting proxy) is handed over as
a second build secret; anything that names a path of the builder (``find-links``, ``constraint``,
``file://`` indexes) is left out, since the hashed lock needs neither and the build cannot see
the builder's disk. Where nothing is configured the build uses pip's default index.

The result goes into the build as secrets (``RUN --mount=type=secret``), never as build
arguments, so an index URL with credentials does not end up in the image's history.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: Options that keep their meaning inside the build.
KEPT = ("index-url", "extra-index-url", "trusted-host", "timeout", "default-timeout", "retries", "proxy", "no-index")
#: Build-secret ids, and where the Dockerfiles' ``RUN --mount=type=secret`` puts them.
MOUNT_DIR = "/run/secrets"
PIP_CONF_ID = "pip.conf"
CA_BUNDLE_ID = "pip-ca.pem"


@dataclass(frozen=True)
class PipBuildConfig:
    """What the build's pip is told, and what was left out (to report it)."""

    options: dict[str, str]
    ca_bundle: Path | None
    dropped: dict[str, str]

    def pip_conf(self) -> str:
        """The pip.conf the build reads (``PIP_CONFIG_FILE``)."""
        lines = ["[global]"]
        lines += [f"{key} = {value}" for key, value in sorted(self.options.items())]
        if self.ca_bundle:
            lines.append(f"cert = {MOUNT_DIR}/{CA_BUNDLE_ID}")
        return "\n".join(lines) + "\n"

    def write_secrets(self, directory: Path) -> dict[str, Path]:
        """Write the secret files into ``directory``; return secret id -> file for the build."""
        conf = directory / PIP_CONF_ID
        conf.write_text(self.pip_conf())
        secrets = {PIP_CONF_ID: conf}
        if self.ca_bundle:
            secrets[CA_BUNDLE_ID] = self.ca_bundle
        return secrets


def _effective(listing: str) -> dict[str, str]:
    """``pip config list`` lines to option -> value, with pip's precedence (env last, so it wins)."""
    from_files: dict[str, str] = {}
    from_env: dict[str, str] = {}
    for line in listing.splitlines():
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        section, _, option = key.rpartition(".")
        try:
            value = ast.literal_eval(raw)
        except (SyntaxError, ValueError):
            value = raw
        if section == ":env:":
            from_env[option] = str(value)
        elif section in ("global", "install", "download"):
            from_files[option] = str(value)
    return {**from_files, **from_env}


def _is_local(value: str) -> bool:
    return all(part.startswith(("file:", "/", ".")) for part in value.split()) if value.strip() else True


def translate(options: dict[str, str]) -> PipBuildConfig:
    """Split the builder's pip options into what the build keeps, the CA bundle, and the rest."""
    kept: dict[str, str] = {}
    dropped: dict[str, str] = {}
    ca_bundle = None
    for option, value in options.items():
        if option == "cert" and Path(value).is_file():
            ca_bundle = Path(value)
        elif option in ("index-url", "extra-index-url"):
            network = " ".join(part for part in value.split() if not _is_local(part))
            if network:
                kept[option] = network
            if network != value:
                dropped[option] = " ".join(part for part in value.split() if _is_local(part))
        elif option in KEPT:
            kept[option] = value
        else:
            dropped[option] = value
    return PipBuildConfig(kept, ca_bundle, dropped)


def builder_pip_config(python: str = sys.executable) -> PipBuildConfig:
    """The build's pip configuration, derived from the pip of ``python`` (this venv's by default)."""
    listing = subprocess.run(
        [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    ).stdout
    return translate(_effective(listing))
