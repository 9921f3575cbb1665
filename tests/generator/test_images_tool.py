"""generator.tools.images without an engine: pip configuration, engine settings, build command lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.tools import ToolError
from generator.tools.images import base, build, engine, pip_config


def test_pip_config_keeps_network_indexes_and_hands_over_the_ca_bundle(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    listing = "\n".join(
        [
            "global.cert='/nonexistent/ca.pem'",
            "global.extra-index-url='file:///opt/pypi/simple https://mirror.invalid/simple'",
            "global.find-links='/opt/wheels'",
            "global.constraint='/etc/xdg/pip/constraints.txt'",
            "global.timeout='60'",
            f":env:.cert='{bundle}'",
            ":env:.index-url='https://index.invalid/simple'",
        ]
    )
    config = pip_config.translate(pip_config._effective(listing))
    assert config.options == {
        "index-url": "https://index.invalid/simple",
        "extra-index-url": "https://mirror.invalid/simple",
        "timeout": "60",
    }
    assert config.ca_bundle == bundle  # the environment wins over the files, as in pip
    assert set(config.dropped) == {"extra-index-url", "find-links", "constraint"}
    conf = config.pip_conf()
    assert conf.startswith("[global]\n") and f"cert = /run/secrets/{pip_config.CA_BUNDLE_ID}" in conf
    secrets = config.write_secrets(tmp_path)
    assert secrets == {pip_config.PIP_CONF_ID: tmp_path / "pip.conf", pip_config.CA_BUNDLE_ID: bundle}


def test_pip_config_with_nothing_configured_uses_the_default_index(tmp_path):
    config = pip_config.translate({})
    assert config.pip_conf() == "[global]\n" and config.ca_bundle is None
    assert list(config.write_secrets(tmp_path)) == [pip_config.PIP_CONF_ID]


def test_containers_configuration_is_project_local(tmp_path):
    env = engine.containers_configuration(tmp_path)
    conf = Path(env["CONTAINERS_CONF"]).read_text()
    storage = Path(env["CONTAINERS_STORAGE_CONF"]).read_text()
    assert f'graphroot = "{tmp_path / "storage"}"' in storage and f'runroot = "{tmp_path / "run"}"' in storage
    assert f'tmp_dir = "{tmp_path / "tmp"}"' in conf
    assert "default_ulimits" in conf and "nproc=" in conf and "nofile=" in conf
    for limit in engine._ulimits():
        name, value = limit.split("=")
        assert int(value.split(":")[0]) <= engine.DEFAULT_ULIMITS[name]
    before = Path(env["CONTAINERS_CONF"]).stat().st_mtime_ns
    engine.containers_configuration(tmp_path)  # unchanged content: not rewritten
    assert Path(env["CONTAINERS_CONF"]).stat().st_mtime_ns == before


def test_unknown_engine_name_is_refused(monkeypatch):
    monkeypatch.setenv("CONTAINER_ENGINE", "rkt")
    with pytest.raises(ToolError, match="CONTAINER_ENGINE='rkt'"):
        engine.detect_engine()


def test_base_default_comes_from_the_dockerfile_and_the_debian_tag_from_the_recipe():
    specs = build.image_specs()
    defaults = {base.default_base(spec.dockerfile) for spec in specs.values()}
    assert len(defaults) == 1 and next(iter(defaults)).startswith("python:")
    reference = base.debian_base_reference()
    assert reference == base.debian_base_reference() and reference.startswith(f"{base.REPOSITORY}:{base.SUITE}-")
    command = base.mmdebstrap_command(Path("out.tar"))
    assert "--variant=minbase" in command and command[-2:] == [base.SUITE, "out.tar"]


@pytest.mark.parametrize("name", ["docker", "podman"])
def test_build_arguments(name, tmp_path):
    spec = build.image_specs()["server"]
    secrets = {"pip.conf": tmp_path / "pip.conf"}
    args = build.build_arguments(engine.Engine(name, name), spec, "repo:rev", "base:1", "rev", secrets)
    assert args[:5] == ["build", "--file", str(spec.dockerfile), "--tag", "repo:rev"]
    assert "BASE_IMAGE=base:1" in args and "CODE_REVISION=rev" in args
    assert "org.opencontainers.image.revision=rev" in args  # set at commit time: no stale cached label
    assert ("--env" in args) is (name == "podman")
    assert f"id=pip.conf,src={tmp_path / 'pip.conf'}" in args
    assert ("--ignorefile" in args) is (name == "podman")  # BuildKit finds Dockerfile.dockerignore itself
    assert spec.ignorefile.is_file()
