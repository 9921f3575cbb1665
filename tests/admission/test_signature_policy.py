"""The optional signature policy (argocd/components/release-signatures): a sigstore
policy-controller ClusterImagePolicy for the server and trainer repositories, requiring a keyless
signature by the release workflow on main; a Kustomize Component kustomize builds; and make
validate's explicit treatment of a kind no registry package has a schema for."""

from __future__ import annotations

import re

import pytest
import yaml

from generator.config import load_config
from generator.paths import REPO_ROOT
from generator.synthesis.signatures import (
    GITHUB_ACTIONS_ISSUER,
    RELEASE_WORKFLOW,
    image_glob,
    repository_web_url,
    workflow_identity,
)
from generator.synthesis.synth import SIGNATURES
from generator.tools import render_overlay
from generator.validate import engine, render

PLATFORM = load_config(REPO_ROOT / "platform.yaml")
COMPONENT = REPO_ROOT / SIGNATURES


def built() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(render_overlay(COMPONENT)) if doc]


def test_the_component_builds_to_one_cluster_image_policy():
    kustomization = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    [policy] = built()
    assert (policy["apiVersion"], policy["kind"]) == ("policy.sigstore.dev/v1beta1", "ClusterImagePolicy")
    assert kustomization["resources"] == [f"clusterimagepolicy-{policy['metadata']['name']}.yaml"]


def test_it_requires_the_release_workflows_keyless_signature_on_both_images():
    [policy] = built()
    images = PLATFORM.images
    globs = [i["glob"] for i in policy["spec"]["images"]]
    assert globs == [image_glob(r) for r in sorted({images.server.repository, images.trainer.repository})]
    [authority] = policy["spec"]["authorities"]
    assert set(authority) == {"name", "keyless"}  # keyless only: no key, no static pass
    [identity] = authority["keyless"]["identities"]
    assert identity == {"issuer": GITHUB_ACTIONS_ISSUER, "subject": workflow_identity(PLATFORM.argocd.repo_url)}
    assert identity["subject"].endswith(f"/{RELEASE_WORKFLOW}@refs/heads/main")
    assert (REPO_ROOT / RELEASE_WORKFLOW).is_file()


def policy_controller_glob(glob: str) -> re.Pattern[str]:
    """policy-controller's translation of a glob (pkg/apis/glob): ``**`` any text, ``*`` any but '/'."""
    pattern = re.escape(glob).replace(r"\*\*", "\0").replace(r"\*", "[^/]*").replace("\0", ".*")
    return re.compile(f"^{pattern}$")


@pytest.mark.parametrize("reference", ["{}:0.1.0", "{}@sha256:" + "0" * 64])
def test_the_glob_matches_a_repositorys_tags_and_digests(reference):
    for repository in (PLATFORM.images.server.repository, PLATFORM.images.trainer.repository):
        glob = policy_controller_glob(image_glob(repository))
        assert glob.match(reference.format(repository))
        assert not glob.match(reference.format(repository.rsplit("/", 1)[0] + "/other"))


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/ml/ml-gitops.git",
        "https://git.example.com/ml/ml-gitops",
        "ssh://git@git.example.com:22/ml/ml-gitops.git",
        "git@git.example.com:ml/ml-gitops.git",
    ],
)
def test_the_identity_names_the_repository_however_its_url_is_written(url):
    assert repository_web_url(url) == "https://git.example.com/ml/ml-gitops"
    assert workflow_identity(url) == (
        "https://git.example.com/ml/ml-gitops/.github/workflows/release.yaml@refs/heads/main"
    )


def test_validate_builds_the_component_and_says_it_has_no_schema():
    assert COMPONENT in render.argocd_kustomizations(REPO_ROOT)
    argocd = render.load_argocd(REPO_ROOT, render_overlay)
    assert argocd is not None
    assert not any(r.kind in ("Component", "ClusterImagePolicy") for r in argocd.resources)
    directories = render.by_directory(argocd)
    assert "argocd/admin" in directories and not any("components" in d for d in directories)
    result = engine.run(engine.Options(root=REPO_ROOT, freshness=False, secrets=False, kubeconform="off", charts=False))
    assert result.findings == []
    notes = [n for n in result.stats["notes"] if "ClusterImagePolicy" in n]
    assert len(notes) == 1 and "not schema-checked: no registry package carries" in notes[0]
