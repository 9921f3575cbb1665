"""Which kubectl and helm builds count as fitting, and that the chosen ones really run."""

from __future__ import annotations

import subprocess

import pytest

from generator.tools import _fits, helm_path, kubectl_path


@pytest.mark.parametrize(
    "tool, version, fits",
    [
        ("kubectl", "v1.33.9 (kustomize v5.6.0)", True),
        ("kubectl", "v1.32.4-dispatcher (kustomize v5.5.0)", False),
        ("kubectl", "v1.34.0 (kustomize v5.7.0)", False),
        ("helm", "v4.1.4", True),
        ("helm", "v3.17.0", False),
    ],
)
def test_version_fit(tool, version, fits):
    assert _fits(tool, version) is fits


def test_chosen_binaries_run():
    assert (
        "v1.33"
        in subprocess.run([kubectl_path(), "version", "--client"], capture_output=True, text=True, check=True).stdout
    )
    assert subprocess.run(
        [helm_path(), "version", "--short"], capture_output=True, text=True, check=True
    ).stdout.startswith("v4.")
