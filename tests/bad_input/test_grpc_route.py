"""``make validate`` on a canary GRPCRoute edited by hand (issue 29, item 4): a rule that takes
every gRPC method, or weights other than the HTTPRoute's, is a finding naming the route and the
field, exit 1, nothing changed on disk. The copy's prod-canary overlay gets a kustomize patch, as
a person would add one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from bad_input_support import assert_no_crash, copy_repo, findings, snapshot, validate

ROUTE = "prod-canary: GRPCRoute/mnist-server"
#: JSON 6902 operations on the generated GRPCRoute, and the findings each must produce.
EDITS = {
    "catch-all rule": (
        [
            {
                "op": "add",
                "path": "/spec/rules/-",
                "value": {"backendRefs": [{"name": "mnist-server-stable", "port": 8500}]},
            }
        ],
        [f"{ROUTE}: spec.rules[1].matches: matches every method", "[route-scope]"],
    ),
    "whole service": (
        [{"op": "remove", "path": "/spec/rules/0/matches/0/method/method"}],
        [f"{ROUTE}: spec.rules[0].matches: matches every method", "[route-scope]"],
    ),
    "weights unlike the HTTPRoute's": (
        [
            {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 50},
            {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 50},
        ],
        [
            f"{ROUTE}: spec.rules[0].backendRefs: backend weights",
            "differ from HTTPRoute/mnist-server's",
            "[route-weights]",
        ],
    ),
}


def _patch_grpc_route(root: Path, operations: list[dict]) -> None:
    """Add a JSON 6902 patch of the GRPCRoute to the prod-canary overlay's kustomization."""
    path = root / "overlays/prod-canary/kustomization.yaml"
    kustomization = yaml.safe_load(path.read_text())
    kustomization["patches"].append(
        {"target": {"kind": "GRPCRoute", "name": "mnist-server"}, "patch": json.dumps(operations)}
    )
    path.write_text(yaml.safe_dump(kustomization, sort_keys=False))


@pytest.mark.parametrize("edit", list(EDITS))
def test_a_grpc_route_that_reaches_past_predict_or_its_weights_is_named(tmp_path, edit):
    root = copy_repo(tmp_path)
    operations, parts = EDITS[edit]
    _patch_grpc_route(root, operations)
    before = snapshot(root)
    result = validate(root, "--no-freshness")
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_crash(result)
    assert snapshot(root) == before
    got = findings(result)
    (line,) = got  # this one finding, and nothing about the HTTPRoute or anything else
    assert all(part in line for part in parts), line
