"""The model server's settings layer: a hostile value in any of its environment variables stops
it at start with one line naming the variable (exit 2), never a traceback or a worker that dies
later; the gunicorn master checks what the declarations cannot (directories, the bind address)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loopback import free_port

from generator.paths import REPO_ROOT
from services.inference.settings import ConfigError, Settings

VARIABLES = sorted(str(field.validation_alias) for field in Settings.model_fields.values())


def _numeric(annotation: object) -> bool:
    args = typing.get_args(annotation)
    return annotation in (int, float) or any(_numeric(arg) for arg in args)


NUMERIC = sorted(str(f.validation_alias) for f in Settings.model_fields.values() if _numeric(f.annotation))
control = st.tuples(st.text(max_size=4), st.sampled_from("\x00\n\r\x1b\x7f"), st.text(max_size=4)).map("".join)
not_a_bounded_number = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e30", "99999999999999999999", "-99999999999", "0x10", "1,5", "ten"]),
    st.integers(min_value=2**31, max_value=2**70).map(str),
)


def refused(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message
    return message


@given(variable=st.sampled_from(VARIABLES), value=control)
def test_a_control_character_in_any_variable_is_refused(variable, value):
    assert refused({variable: value}).startswith(f"{variable}=")


@given(variable=st.sampled_from(NUMERIC), value=not_a_bounded_number)
def test_a_number_out_of_bounds_or_not_a_number_is_refused(variable, value):
    assert refused({variable: value}).startswith(f"{variable}=")


def gunicorn(env: dict[str, str], tmp_path: Path) -> subprocess.Popen:
    base = {
        "PATH": os.environ["PATH"],
        "MODEL_BASE_PATH": str(tmp_path),
        "MODEL_NAME": "mnist",
        "TMPDIR": str(tmp_path),
    }
    base |= {"PORT": str(free_port()), "METRICS_PORT": str(free_port()), "GRPC_PORT": "0", "WORKERS": "1"}
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "--config", "services/inference/gunicorn.conf.py"],
        cwd=REPO_ROOT,
        env={**base, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"PROMETHEUS_MULTIPROC_DIR": "{file}"}, "PROMETHEUS_MULTIPROC_DIR={file}: exists and is not a directory"),
        ({"HOST": "bad_host!"}, "HOST='bad_host!': must be an IPv4 or IPv6 address or a host name"),
        ({"MODEL_POLL_SECONDS": "1e30"}, "MODEL_POLL_SECONDS='1e30': Input should be less than or equal to 86400"),
        (
            {"MODEL_DIGEST": "sha256:" + "A" * 64},
            f"MODEL_DIGEST='sha256:{'A' * 64}': must be sha256:<64 lowercase hex digits>, the version digest its "
            "model card gives",
        ),
        (
            {"LOG_LEVEL": "bogus"},
            "LOG_LEVEL='bogus': Input should be 'debug', 'info', 'warning', 'error' or 'critical'",
        ),
        (
            {"MODEL_VERSION_PATH": "/model-image/model"},
            "MODEL_VERSION_PATH='/model-image/model': holds one version's files, so MODEL_VERSION must say which "
            "version it is",
        ),
    ],
)
def test_the_server_refuses_bad_settings_at_start_with_exit_2(tmp_path, env, says):
    afile = tmp_path / "a-file"
    afile.write_text("")
    server = gunicorn({k: v.format(file=afile) for k, v in env.items()}, tmp_path)
    _, stderr = server.communicate(timeout=60)
    assert server.returncode == 2, stderr
    assert stderr.strip().splitlines() == [f"model server configuration error: {says.format(file=afile)}"]


@pytest.mark.parametrize("variable", ["PORT", "GRPC_PORT", "METRICS_PORT"])
def test_a_port_another_program_holds_is_named_with_the_setting_to_change(tmp_path, variable):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {"HOST": "127.0.0.1", variable: str(port)}
        if variable != "PORT":
            env["PORT"] = str(free_port())
        server = gunicorn(env, tmp_path)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 2, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"model server configuration error: {variable}={port}: Address already in use; another program has it: "
        f"set {variable}= to a free port"
    )


def test_an_ipv6_host_is_bound_in_brackets_and_both_addresses_are_logged(tmp_path):
    grpc_port = free_port()
    server = gunicorn({"HOST": "::1", "GRPC_PORT": str(grpc_port)}, tmp_path)
    grpc_line = f"gRPC (TF Serving's API, grpc.health.v1) listening at: [::1]:{grpc_port}"
    try:
        deadline, seen = time.monotonic() + 60, ""
        while grpc_line not in seen and time.monotonic() < deadline and server.poll() is None:
            seen += server.stderr.readline()
        assert "Listening at: http://[::1]:" in seen and grpc_line in seen, seen
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.communicate(timeout=60)


@pytest.mark.parametrize(
    "env, says",
    [
        ({"MODEL_BASE_PATH": "/" + "m" * 5000}, "a path holds at most 4096 (PATH_MAX)"),
        ({"MODEL_BASE_PATH": "/models/" + "m" * 256}, "one holds at most 255 (NAME_MAX)"),
        ({"MODEL_NAME": "x" * 100_000}, "…x' (100,000 characters)"),
    ],
)
def test_a_huge_value_is_named_cut_not_repeated(env, says):
    message = refused(env)
    assert message.startswith(f"{next(iter(env))}=") and says in message
