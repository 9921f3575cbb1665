"""Settings declared once: the README table is generated from them; platform facts reach the server."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from svc_helpers import MODEL, PY, REPO_ROOT, clean_env, make_app, wait_loaded

from services.contract import NAME_MAX
from services.inference.settings import ConfigError, Settings, settings_table

README = REPO_ROOT / "services" / "inference" / "README.md"


def test_readme_settings_table_is_generated_from_the_declarations():
    text = README.read_text()
    match = re.search(r"<!-- settings-table: begin \(generated\) -->\n(.*?)<!-- settings-table: end -->", text, re.S)
    assert match, "README lost its settings-table markers"
    assert match.group(1) == settings_table(), "run: python -m services.inference.settings, paste into the README"
    for info in Settings.model_fields.values():
        assert info.validation_alias and info.description, info


def test_every_problem_is_named_at_once():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"PORT": "x", "GRPC_PORT": "70000", "MODEL_CLASSES": "[1,"})
    message = str(caught.value)
    assert "PORT='x'" in message or "MODEL_CLASSES" in message
    with pytest.raises(ConfigError, match="GRPC_PORT='70000'"):
        Settings.from_env({"PORT": "1", "GRPC_PORT": "70000"})
    parsed = Settings.from_env({"MODEL_INPUT_SHAPE": "[28, 28, 1]", "MODEL_VERSION_LABELS": '{"stable": 2}'})
    assert parsed.model_input_shape == (28, 28, 1) and parsed.model_version_labels == {"stable": 2}


def test_every_port_differs_and_the_grpc_surface_is_closed_by_default():
    with pytest.raises(ConfigError, match="METRICS_PORT=8080: is also PORT"):
        Settings.from_env({"PORT": "8080", "METRICS_PORT": "8080"})
    with pytest.raises(ConfigError, match="GRPC_PORT=9000: is also METRICS_PORT"):
        Settings.from_env({"METRICS_PORT": "9000", "GRPC_PORT": "9000"})
    assert Settings.from_env({"GRPC_PORT": "0"}).grpc_port == 0  # gRPC off shares nothing
    with pytest.raises(ConfigError, match="GRPC_MAX_CONCURRENT_RPCS='0'"):
        Settings.from_env({"GRPC_MAX_CONCURRENT_RPCS": "0"})
    defaults = Settings.from_env({})
    assert defaults.grpc_reflection is False and defaults.grpc_max_concurrent_rpcs >= 1
    assert Settings.from_env({"GRPC_REFLECTION": "true"}).grpc_reflection is True


def test_the_gunicorn_master_imports_no_runtime():
    code = (
        "import runpy, sys; runpy.run_path('services/inference/gunicorn.conf.py');"
        "import services.inference.worker;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'grpc', 'prometheus_client', 'flask'}))"
    )
    out = subprocess.run([PY, "-c", code], cwd=REPO_ROOT, env=clean_env(), capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.slow
def test_declared_input_shape_is_checked_at_load_and_classes_named(model_store):
    app = make_app(model_store, MODEL_INPUT_SHAPE="[28, 28, 3]")
    repo = app.extensions["inference.repository"]
    try:
        assert not repo.wait_until_loaded(3)
        assert "MODEL_INPUT_SHAPE" in repo.last_error and "[28, 28, 3]" in repo.last_error
    finally:
        repo.stop()
    classes = [str(d) for d in range(10)]
    app = make_app(model_store, MODEL_INPUT_SHAPE="[28, 28, 1]", MODEL_CLASSES=str(classes).replace("'", '"'))
    try:
        wait_loaded(app)
        info = app.test_client().get(f"/v1/models/{MODEL}/metadata").get_json()["metadata"]["model_info"]
        assert info["classes"] == classes
        resp = app.test_client().post(f"/v1/models/{MODEL}:predict", json={"instances": [np.zeros((28, 28)).tolist()]})
        assert resp.status_code == 200
    finally:
        app.extensions["inference.repository"].stop()


def test_a_model_name_is_a_dns_label_as_in_platform_yaml():
    """The server takes the model names platform.yaml takes, and no other (services/contract.py)."""
    assert Settings.from_env({"MODEL_NAME": "mnist-v2"}).model_name == "mnist-v2"
    for bad in ("mnist_v2", "mnist.v2", "x" * (NAME_MAX + 1)):
        with pytest.raises(ConfigError, match=re.escape(f"MODEL_NAME='{bad}': must be a DNS-1123 label")):
            Settings.from_env({"MODEL_NAME": bad})
