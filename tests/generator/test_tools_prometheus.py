"""Which promtool/prometheus builds count as fitting, and that the chosen ones really run."""

from __future__ import annotations

import subprocess

import pytest

from generator.tools.prometheus import prometheus_path, promtool_path
from generator.tools.table import PROMETHEUS

fits = PROMETHEUS.binary("promtool").fits


@pytest.mark.parametrize(
    "version, fitting",
    [
        ("2.42.0", True),  # Debian bookworm
        ("2.45.3", True),  # Ubuntu 24.04
        ("2.53.1", True),
        ("2.41.0", False),
        ("3.1.0", False),  # range selection changed in 3.x
        ("2.42", False),
        ("v2.42.0", False),
    ],
)
def test_version_fit(version, fitting):
    assert fits(version) is fitting


def test_chosen_binaries_run_and_fit():
    for name, path in (("promtool", promtool_path()), ("prometheus", prometheus_path())):
        version = PROMETHEUS.version_of(path, name)
        assert version and fits(version), (path, version)
    help_text = subprocess.run([promtool_path(), "test", "rules", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and "Unit tests for rules" in help_text.stdout + help_text.stderr


def test_a_binary_that_cannot_run_has_no_version(tmp_path):
    fake = tmp_path / "promtool"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    assert PROMETHEUS.version_of(str(fake), "promtool") is None
    assert PROMETHEUS.version_of(str(tmp_path / "missing"), "promtool") is None
