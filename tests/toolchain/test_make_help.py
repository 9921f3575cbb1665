"""``make help`` lists every documented target once, under the Makefile's section titles, as plain
text when it is not written to a terminal."""

from __future__ import annotations

import re
import subprocess

from generator.paths import REPO_ROOT
from services.contract import GRPC_PORT, METRICS_PORT

MAKEFILE = (REPO_ROOT / "Makefile").read_text()


def test_help_lists_every_target_under_its_section_in_plain_text():
    out = subprocess.run(["make", "--no-print-directory", "help"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "\033" not in out.stdout  # piped: no colour codes
    documented = re.findall(r"^([a-zA-Z0-9_-]+):.*## ", MAKEFILE, re.M)
    listed = re.findall(r"^  ([a-zA-Z0-9_-]+) ", out.stdout, re.M)
    assert listed == documented and len(set(listed)) == len(listed)
    sections = [line for line in out.stdout.splitlines() if line and not line.startswith(" ")]
    assert sections[:3] == ["bootstrap", "the main job", "tests and checks"]
    assert "serve" in out.stdout.split("\nservices\n", 1)[1].split("\n\n", 1)[0]


def test_make_serve_listens_where_the_server_and_the_chart_do():
    """``make serve`` and ``make predict`` default to TF Serving's gRPC port (services/contract.py)."""
    assert re.search(rf"^GRPC_PORT \?= {GRPC_PORT}$", MAKEFILE, re.M)
    assert re.search(rf"^METRICS_PORT \?= {METRICS_PORT}$", MAKEFILE, re.M)
