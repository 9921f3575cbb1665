"""Mutation tests: copy an overlay (the fixture repository's, then the repository's own dev
overlay), add a known-bad patch, and assert that one specific check fires at one specific
location."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from validate_support import CON, add_patch, build_repo, lines, run

from generator.paths import REPO_ROOT
from generator.validate import engine


@pytest.fixture
def repo(tmp_path):
    return build_repo(tmp_path)


MUTATIONS = [
    (
        "privileged container",
        "Deployment/web",
        [{"op": "add", "path": f"{CON}/securityContext/privileged", "value": True}],
        "dev: Deployment/web: spec.template.spec.containers[0].securityContext.privileged: "
        "container 'server' is privileged [pss-privileged]",
    ),
    (
        "unknown field",
        "Deployment/web",
        [{"op": "add", "path": f"{CON}/imagePullPolicyy", "value": "Always"}],
        "dev: Deployment/web: spec.template.spec.containers[0].imagePullPolicyy: "
        "unknown field 'imagePullPolicyy' [schema]",
    ),
    (
        "latest tag",
        "Deployment/web",
        [{"op": "replace", "path": f"{CON}/image", "value": "registry.example.com/ml/server:latest"}],
        "dev: Deployment/web: spec.template.spec.containers[0].image: image 'registry.example.com/ml/server:latest' "
        "uses the mutable tag 'latest' [image-tag]",
    ),
    (
        "Service selector typo",
        "Service/web",
        [{"op": "replace", "path": "/spec/selector", "value": {"app.kubernetes.io/name": "wbe"}}],
        "dev: Service/web: spec.selector: selects no pods in this overlay (selector {'app.kubernetes.io/name': 'wbe'}) "
        "[service-selector]",
    ),
    (
        "missing limits",
        "Job/train",
        [{"op": "remove", "path": f"{CON}/resources/limits"}],
        "dev: Job/train: spec.template.spec.containers[0].resources.limits.memory: "
        "container 'train': limits.memory is not set [resources]",
    ),
    (
        "invalid quantity",
        "Deployment/web",
        [{"op": "replace", "path": f"{CON}/resources/limits/memory", "value": "lots"}],
        "dev: Deployment/web: spec.template.spec.containers[0].resources.limits.memory: "
        'invalid quantity "lots" (e.g. 500m, 1.5, 256Mi, 2Gi) [schema]',
    ),
    (
        "no PDB",
        "PodDisruptionBudget/web",
        [{"op": "replace", "path": "/spec/selector/matchLabels", "value": {"app.kubernetes.io/name": "other"}}],
        "dev: Deployment/web: spec.replicas: HPA minReplicas 2 but no PodDisruptionBudget selects its pods [pdb]",
    ),
]


@pytest.mark.parametrize("target,ops,expected", [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_mutation_fires_the_specific_check(repo, target, ops, expected):
    add_patch(repo / "overlays" / "dev", target, ops)
    assert expected in lines(run(repo))


def _real_copy(tmp_path: Path) -> Path:
    real = REPO_ROOT
    if not (real / "overlays" / "dev" / "kustomization.yaml").is_file():
        pytest.skip("the repository has no overlays/dev yet")
    import shutil

    for name in ("overlays", "argocd"):
        if (real / name).is_dir():
            shutil.copytree(real / name, tmp_path / name)
    if (real / "platform.yaml").is_file():
        shutil.copy(real / "platform.yaml", tmp_path / "platform.yaml")
    return tmp_path


def _first(root: Path, kind: str) -> str:
    rendered = engine.render.render_overlay_dir(root, root / "overlays" / "dev", engine.render.default_renderer())
    return next(r.name for r in rendered.resources if r.kind == kind)


REAL_MUTATIONS = {
    "privileged container": (
        "Deployment",
        [{"op": "add", "path": f"{CON}/securityContext/privileged", "value": True}],
        "pss-privileged",
        "spec.template.spec.containers[0].securityContext.privileged",
    ),
    "unknown field": (
        "Deployment",
        [{"op": "add", "path": f"{CON}/imagePullPolicyy", "value": "Always"}],
        "schema",
        "spec.template.spec.containers[0].imagePullPolicyy",
    ),
    "latest tag": (
        "Deployment",
        [{"op": "replace", "path": f"{CON}/image", "value": "registry.example.com/x:latest"}],
        "image-tag",
        "spec.template.spec.containers[0].image",
    ),
    "missing limits": (
        "Deployment",
        [{"op": "remove", "path": f"{CON}/resources/limits"}],
        "resources",
        "spec.template.spec.containers[0].resources.limits.memory",
    ),
    "Service selector typo": (
        "Service",
        [{"op": "add", "path": "/spec/selector/app.kubernetes.io~1name", "value": "typo"}],
        "service-selector",
        "spec.selector",
    ),
    "invalid quantity": (
        "Deployment",
        [{"op": "replace", "path": f"{CON}/resources/requests/memory", "value": "lots"}],
        "schema",
        "spec.template.spec.containers[0].resources.requests.memory",
    ),
}


@pytest.mark.parametrize("name", list(REAL_MUTATIONS))
def test_mutation_of_the_real_dev_overlay(tmp_path, name):
    """The same known-bad patches on a copy of the repository's own dev overlay."""
    root = _real_copy(tmp_path)
    kind, ops, check, path = REAL_MUTATIONS[name]
    target = _first(root, kind)
    add_patch(root / "overlays" / "dev", f"{kind}/{target}", ops)
    got = {(f.overlay, f.check, f.resource, f.path) for f in run(root, overlays=["dev"]).findings}
    assert ("dev", check, f"{kind}/{target}", path) in got, sorted(got)


def test_real_application_pointing_at_a_missing_path(tmp_path):
    root = _real_copy(tmp_path)
    app_file = next(
        p
        for p in sorted((root / "argocd").glob("*.yaml"))
        if "overlays/dev" in p.read_text() and "kind: Application" in p.read_text()
    )
    app_file.write_text(app_file.read_text().replace("path: overlays/dev", "path: overlays/dve"))
    name = yaml.safe_load(app_file.read_text().split("\n", 1)[1])["metadata"]["name"]
    got = lines(run(root))
    assert (
        f"argocd: Application/{name}: spec.source.path: path 'overlays/dve' does not exist in the repository "
        "[argocd-app-path]"
    ) in got
