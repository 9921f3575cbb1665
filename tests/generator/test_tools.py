"""The table of tools: which builds count as fitting, how versions are read, that every binary has
one entry and one status line, and that the chosen kubectl and helm really run."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from generator.paths import REPO_ROOT, TOOLS_BIN
from generator.tools import helm_path, kubectl_path
from generator.tools.__main__ import markdown
from generator.tools.base import Bootstrapped, Probe
from generator.tools.debian import TOOLS_LIB
from generator.tools.table import SOURCES, TOOLS, WRK, entry_of


@pytest.mark.parametrize(
    "tool, version, fits",
    [
        ("kubectl", "v1.33.9 (kustomize v5.6.0)", True),
        ("kubectl", "v1.32.4-dispatcher (kustomize v5.5.0)", False),
        ("kubectl", "v1.34.0 (kustomize v5.7.0)", False),
        ("helm", "v4.1.4", True),
        ("helm", "v3.17.0", False),
        ("docker-registry", "2.8.2", True),
        ("docker-registry", "2.6.2", False),
        ("wrk", "4.1.0", True),
        ("etcd", "3.5.1", True),
        ("etcd", "3.4.30", False),
        ("kube-apiserver", "v1.33.4", True),
        ("kube-apiserver", "v1.32.0", False),
        ("kubeconform", "v0.6.7", True),  # any version: kubeconform is optional and found, never pinned
    ],
)
def test_version_fit(tool, version, fits):
    assert entry_of(tool).fits(version) is fits


def test_the_table_names_every_binary_the_repository_runs_once():
    names = [binary.name for source in SOURCES for binary in source.binaries]
    assert len(names) == len(set(names)) == len(TOOLS)
    assert set(names) == {
        "kubectl",
        "helm",
        "promtool",
        "prometheus",
        "docker-registry",
        "wrk",
        "kubeconform",
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "readme-generator",
    }


def test_the_records_are_the_stamps_the_makefile_checks():
    stamps = set(re.findall(r"^[A-Z_]+_STAMP := (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.M))
    records = {
        source.record.relative_to(REPO_ROOT).as_posix() for source in SOURCES if isinstance(source, Bootstrapped)
    }
    assert stamps <= records and ".tools/tools.json" in stamps


def test_a_probe_reads_the_version_whatever_the_binary_prints_it_with(tmp_path):
    fake = tmp_path / "wrk"
    fake.write_text("#!/bin/sh\necho 'wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer'\nexit 1\n")
    fake.chmod(0o755)
    assert entry_of("wrk").probe.version_of(fake) == "4.1.0"  # wrk -v exits 1, and that is an answer
    assert Probe(("-v",)).version_of(fake) is None  # for other binaries it is not
    assert Probe().version_of(tmp_path / "missing") is None


def test_an_extracted_binary_runs_with_the_libraries_extracted_beside_it():
    extracted = WRK.environ(str(TOOLS_BIN / "wrk"))
    assert extracted["LD_LIBRARY_PATH"].split(":")[0] == str(TOOLS_LIB)
    assert WRK.environ("/usr/bin/wrk").get("LD_LIBRARY_PATH") == os.environ.get("LD_LIBRARY_PATH")


def test_the_readme_shows_the_table():
    assert markdown() in (REPO_ROOT / "generator" / "tools" / "README.md").read_text()


def test_the_status_has_one_line_per_tool_and_says_how_to_get_a_missing_one():
    """What ``python -m generator.tools`` prints after bootstrapping kubectl and helm (which
    ``make test`` did); asking extracts and installs nothing."""
    lines = [found.line() for source in SOURCES for found in source.found()]
    assert [line.split()[1] for line in lines] == list(TOOLS)
    assert re.match(r"tools: kubectl +v1\.33\.\d+ \(kustomize v5\.\d+\.\d+\) ", lines[0])
    missing = [line for line in lines if line.split()[2] == "-"]
    assert all(" not here: " in line for line in missing)


def test_chosen_binaries_run():
    assert (
        "v1.33"
        in subprocess.run([kubectl_path(), "version", "--client"], capture_output=True, text=True, check=True).stdout
    )
    assert subprocess.run(
        [helm_path(), "version", "--short"], capture_output=True, text=True, check=True
    ).stdout.startswith("v4.")
