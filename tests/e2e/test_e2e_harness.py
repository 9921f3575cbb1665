"""The harness itself: a second control plane beside the session's (free ports, its own
directory) is stopped with exactly the processes it started when the block it runs in is
interrupted; the CRDs it installs are structural and strict."""

from __future__ import annotations

import copy
import os

import pytest
from argosync import SyncFailed
from controlplane import ControlPlane

from generator.tools import envtest


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_interrupted_control_plane_stops_exactly_what_it_started(cluster):
    session_pids = cluster.plane.pids()
    with pytest.raises(KeyboardInterrupt):
        with ControlPlane.start(envtest.locate()) as plane:
            pids, workdir = plane.pids(), plane.workdir
            assert len(pids) == 3 and not set(pids) & set(session_pids)
            assert plane.server != cluster.plane.server
            assert (
                plane.kubectl("get", "serviceaccount", "default", "-o", "name").stdout.strip()
                == "serviceaccount/default"
            )
            raise KeyboardInterrupt
    assert [pid for pid in pids if alive(pid)] == []
    assert not workdir.exists()
    assert cluster.plane.pids() == session_pids  # the session's control plane is untouched
    assert cluster.api.find("/api/v1/namespaces/default")


def test_the_crds_are_structural_and_strict(cluster, repository):
    """Built from the validate schemas, the CRDs are structural (so the server prunes, defaults
    and validates), and strict field validation rejects a field the upstream CRD does not have."""
    definitions = cluster.api.items("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    assert definitions
    for crd in definitions:
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", crd["metadata"]["name"]
        assert "NonStructuralSchema" not in conditions, crd["metadata"]["name"]
    served = {(c["spec"]["group"], c["spec"]["names"]["kind"]) for c in definitions}
    custom = [o for o in repository.all_objects() if (o["apiVersion"].rpartition("/")[0], o["kind"]) in served]
    sample = copy.deepcopy(custom[0])
    sample["metadata"]["namespace"] = "default"
    sample.setdefault("spec", {})["e2eNoSuchField"] = True
    with pytest.raises(SyncFailed, match="field not declared in schema|unknown field"):
        cluster.syncer.apply([sample], dry_run=True)
