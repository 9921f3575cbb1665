"""Container images of the services: hadolint-clean and true to the contracts the chart relies on."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from svc_helpers import REPO_ROOT

from services.contract import GRPC_PORT, METRICS_PORT
from services.inference.settings import Settings

DOCKERFILES = {
    "inference": REPO_ROOT / "services/inference/Dockerfile",
    "training": REPO_ROOT / "services/training/Dockerfile",
}
#: The user the chart runs the pods as (values.yaml, the one definition of the pod security
#: context): the images must be built to run as it.
POD_SECURITY = yaml.safe_load((REPO_ROOT / "charts/inference-service/values.yaml").read_text())["podSecurityContext"]
COMMANDS = {
    "inference": '["gunicorn", "--config", "/app/services/inference/gunicorn.conf.py"]',
    "training": '["python", "-m", "services.training.train"]',
}


def hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    return str(found) if found.exists() else (shutil.which("hadolint") or pytest.skip("hadolint not installed"))


@pytest.mark.parametrize("service", sorted(DOCKERFILES))
def test_hadolint_has_no_findings(service):
    out = subprocess.run([hadolint(), str(DOCKERFILES[service])], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


@pytest.mark.parametrize("service", sorted(DOCKERFILES))
def test_image_contract(service):
    text = DOCKERFILES[service].read_text()
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M), "the base must come from ARG BASE_IMAGE"
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), f"base image not pinned to a full version: {base}"
    assert "--require-hashes" in text and "/opt/venv" in text
    assert re.search(r"^WORKDIR /app$", text, re.M)
    assert re.search(rf"^USER {POD_SECURITY['runAsUser']}:{POD_SECURITY['runAsGroup']}$", text, re.M)
    assert f"COPY services/{service}/ /app/services/{service}/" in text
    shared = " ".join(f"services/{module.name}" for module in sorted((REPO_ROOT / "services").glob("*.py")))
    assert f"COPY {shared} /app/services/" in text, "every module both services share is in the image"
    admitted = (DOCKERFILES[service].parent / "Dockerfile.dockerignore").read_text().splitlines()
    assert {f"!{path}" for path in shared.split()} <= set(admitted), "...and in the build context"
    assert re.search(rf"^CMD {re.escape(COMMANDS[service])}$", text, re.M)
    assert (DOCKERFILES[service].parent / "Dockerfile.dockerignore").is_file()


def test_the_server_image_exposes_the_servers_ports():
    rest = Settings.model_fields["port"].default
    assert re.search(rf"^EXPOSE {rest} {GRPC_PORT} {METRICS_PORT}$", DOCKERFILES["inference"].read_text(), re.M)
