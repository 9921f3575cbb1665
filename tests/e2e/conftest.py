"""Fixtures of the end-to-end suite (``make e2e``; ``make test`` does not collect it).

One control plane for the session (``cluster``), with the CRDs of every custom kind the
repository deploys. Each overlay is deployed once, lazily, the first time a test asks for it
(``deployed.run(name)``), and every test of that overlay reads the same run. ``repo_root`` is
this checkout; a suite that deploys another tree (rendered from a different platform.yaml in a
``repository.scratch_clone``, say) overrides that fixture, or loads ``Repository.load(root)``
and calls ``deploy_overlay(cluster, repository, overlay, namespace=...)`` beside the others.
"""

from __future__ import annotations

import copy
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from argosync import SyncResult
from cluster import Cluster
from controlplane import ControlPlaneError
from repository import Overlay, Repository

from generator.paths import REPO_ROOT
from generator.tools import envtest
from generator.validate.render import discover_overlays

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
for _var in ("ML_GITOPS_ROOT", "ML_GITOPS_ALLOW_DIRTY"):
    os.environ.pop(_var, None)

STATS = pytest.StashKey[dict]()


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    config.stash[STATS] = {"began": time.monotonic(), "started_in": None, "overlays": {}, "pods": 0}
    # A CI runner cancels with SIGTERM: end like Ctrl-C, so the control plane's teardown runs.
    signal.signal(signal.SIGTERM, _interrupted)


def pytest_generate_tests(metafunc):
    """Every overlay ``make validate`` discovers is a case of every test that takes ``overlay_name``."""
    if "overlay_name" in metafunc.fixturenames:
        metafunc.parametrize("overlay_name", [path.name for path in discover_overlays(REPO_ROOT)])


def _say(config, line: str) -> None:
    """A progress line on the terminal now (not captured with the running test's output)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter and capture:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def repository(repo_root) -> Repository:
    """The overlays and Argo CD objects of ``repo_root``, rendered once."""
    return Repository.load(repo_root)


@pytest.fixture(scope="session")
def cluster(request, repository):
    """A running control plane with stand-in nodes and the repository's CRDs; stopped at the end
    of the session, also when it fails or is interrupted."""
    try:
        assets = envtest.locate()
    except envtest.AssetsMissing as exc:
        pytest.exit(f"envtest: {exc}", returncode=2)  # one line, and no test runs
    began = time.monotonic()
    try:
        running = Cluster.start(assets)
    except ControlPlaneError as exc:
        pytest.exit(f"e2e: the control plane did not start: {exc}", returncode=3)
    try:
        request.config.stash[STATS]["started_in"] = running.plane.started_in
        _say(
            request.config,
            f"\ne2e: control plane ready in {running.plane.started_in:.1f}s "
            f"(kube-apiserver {assets.kube_apiserver.version}, etcd {assets.etcd.version}, "
            f"kubectl {assets.kubectl.version})",
        )
        try:
            running.install_crds(repository.all_objects())
        except (ControlPlaneError, AssertionError) as exc:
            pytest.exit(f"e2e: the CRDs were not installed: {exc}", returncode=3)
        _say(request.config, f"e2e: CRDs installed, {time.monotonic() - began:.1f}s after start")
        yield running
    finally:
        request.config.stash[STATS]["pods"] = running.standins.pods_bound()
        running.stop()


@dataclass
class OverlayRun:
    """One overlay deployed twice, Argo CD style, and what the server said."""

    overlay: Overlay
    application: dict
    namespace_object: dict  # the Namespace the admin Application creates (argocd/admin/)
    first: SyncResult
    second: SyncResult
    before: dict[str, dict]  # "Kind/name" -> live object after the first sync
    after: dict[str, dict]  # ... after the second
    diff: str  # kubectl diff --server-side after the second sync

    @property
    def namespace(self) -> str:
        return self.application["spec"]["destination"]["namespace"]


def deploy_overlay(cluster: Cluster, repository: Repository, overlay: Overlay, namespace: str = "") -> OverlayRun:
    """Sync an overlay into the namespace its Application names (or ``namespace``), then sync it
    again unchanged. Another tree's overlays (``Repository.load(root)``) deploy beside this
    checkout's with a namespace of their own, after ``cluster.install_crds(repository.all_objects())``."""
    application = copy.deepcopy(repository.application_for(overlay))
    namespace_object = repository.namespace_object(overlay)
    if namespace:
        application["spec"]["destination"]["namespace"] = namespace
        overlay = overlay.moved_to(namespace)
    first = cluster.deploy(overlay, application, namespace_object)
    before = {f"{o['kind']}/{o['metadata']['name']}": cluster.syncer.live(o) for o in overlay.objects}
    second = cluster.deploy(overlay, application, namespace_object)
    after = {f"{o['kind']}/{o['metadata']['name']}": cluster.syncer.live(o) for o in overlay.objects}
    return OverlayRun(
        overlay, application, namespace_object, first, second, before, after, cluster.syncer.diff(overlay.resources())
    )


@dataclass
class Deployed:
    """Each overlay deployed once per session, on first use (a failure is remembered and re-raised)."""

    cluster: Cluster
    repository: Repository
    stats: dict
    runs: dict[str, OverlayRun | BaseException] = field(default_factory=dict)

    def run(self, name: str) -> OverlayRun:
        if name not in self.runs:
            overlay = self.repository.overlays[name]
            try:
                self.runs[name] = deploy_overlay(self.cluster, self.repository, overlay)
            except Exception as exc:  # a failed sync, a rejected apply, a tool error: one verdict per overlay
                self.runs[name] = exc
            else:
                run = self.runs[name]
                self.stats["overlays"][name] = {
                    "objects": len(overlay.objects),
                    "pods": self.cluster.standins.pods_bound(run.namespace),
                    "seconds": run.first.seconds + run.second.seconds,
                }
        outcome = self.runs[name]
        if isinstance(outcome, BaseException):
            pytest.fail(f"{name}: {outcome}", pytrace=False)
        return outcome


@pytest.fixture(scope="session")
def deployed(request, cluster, repository) -> Deployed:
    return Deployed(cluster, repository, request.config.stash[STATS])


@pytest.fixture
def overlay_run(deployed, overlay_name) -> OverlayRun:
    return deployed.run(overlay_name)


def pytest_terminal_summary(terminalreporter, config):
    stats = config.stash.get(STATS, None)
    if not stats or stats["started_in"] is None:
        return
    for name, numbers in sorted(stats["overlays"].items()):
        terminalreporter.write_line(
            f"e2e: {name}: {numbers['objects']} objects, {numbers['pods']} pods admitted, "
            f"two syncs in {numbers['seconds']:.1f}s"
        )
    objects = sum(n["objects"] for n in stats["overlays"].values())
    terminalreporter.write_line(
        f"e2e: {len(stats['overlays'])} overlays, {objects} objects, {stats['pods']} pods admitted, "
        f"{time.monotonic() - stats['began']:.1f}s (control plane ready in {stats['started_in']:.1f}s)"
    )
