"""The generated layout is additive: an overlay is the sum of the base, its strategy's server
component, that strategy's training component where the environment trains, and monitoring.
No part deletes or replaces what another renders, and each environment renders exactly its parts."""

from __future__ import annotations

import shutil

import pytest
import yaml

from generator.conventions import STRATEGIES, training_component
from generator.synth import render_tree, write_tree
from generator.tools import REPO_ROOT, render_overlay

COMPONENTS = "overlays/components"


@pytest.fixture(scope="module")
def tree() -> dict[str, bytes]:
    return render_tree(REPO_ROOT / "platform.yaml")


def _part(tree: dict[str, bytes], directory: str) -> list[tuple[str, str]]:
    """(kind, name) of every object a generated directory renders, generated ConfigMaps included."""
    found = []
    for path, data in tree.items():
        if not path.startswith(directory + "/"):
            continue
        for doc in yaml.safe_load_all(data):
            if not doc:
                continue
            if doc.get("kind") in ("Kustomization", "Component"):
                found += [("ConfigMap", g["name"]) for g in doc.get("configMapGenerator", [])]
            elif "metadata" in doc:
                found.append((doc["kind"], doc["metadata"]["name"]))
    return found


def test_no_generated_file_deletes_or_replaces_anything(tree):
    for path, data in tree.items():
        assert b"$patch" not in data, path
        for doc in yaml.safe_load_all(data):
            for patch in (doc or {}).get("patches", []):
                assert "delete" not in patch.get("patch", ""), path


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_parts_of_a_strategy_never_render_the_same_object(tree, strategy):
    """Base, server component, training component and monitoring are disjoint, so adding one
    never overrides another's object (what the deleted-and-re-added layout did)."""
    parts = ["overlays/base", f"{COMPONENTS}/{strategy}", f"{COMPONENTS}/{training_component(strategy)}"]
    parts.append(f"{COMPONENTS}/monitoring")
    seen: dict[tuple[str, str], str] = {}
    for part in parts:
        objects = _part(tree, part)
        assert objects, part
        for obj in objects:
            assert obj not in seen, f"{obj} is rendered by {seen.get(obj)} and {part}"
            seen[obj] = part


def test_the_base_holds_only_what_every_environment_shares(tree):
    assert sorted(_part(tree, "overlays/base")) == [
        ("NetworkPolicy", "mnist-server"),
        ("PersistentVolumeClaim", "model-store"),
        ("Service", "mnist-server"),
        ("ServiceAccount", "mnist-server"),
    ]


@pytest.mark.parametrize("overlay", ["dev", "staging", "prod", "prod-blue-green", "prod-canary"])
def test_each_overlay_renders_exactly_the_sum_of_its_parts(tree, platform, rendered, overlay):
    env = next(e for e in platform.environments if e.overlay == f"overlays/{overlay}")
    parts = ["overlays/base", f"{COMPONENTS}/{env.strategy}", f"{COMPONENTS}/monitoring"]
    if env.train:
        parts.append(f"{COMPONENTS}/{training_component(env.strategy)}")
    expected = sorted(obj for part in parts for obj in _part(tree, part))
    # Generated ConfigMaps carry a content-hash suffix once rendered.
    names = sorted(
        (
            o["kind"],
            o["metadata"]["name"].rsplit("-", 1)[0] if "-release" in o["metadata"]["name"] else o["metadata"]["name"],
        )
        for o in rendered[overlay]
    )
    assert names == expected


def test_the_trainer_is_told_the_image_the_overlay_pins(tmp_path):
    """TRAINER_IMAGE follows the overlay's `images:` pin (the training component's image field
    specs), in the training Job and in the scheduled retrain; other env values stay as they are."""
    shutil.copytree(REPO_ROOT / "overlays", tmp_path / "overlays")
    config = tmp_path / "platform.yaml"
    data = yaml.safe_load((REPO_ROOT / "platform.yaml").read_text())
    data["training"]["schedule"] = "0 3 * * 0"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    write_tree(render_tree(config), tmp_path)
    kustomization = tmp_path / "overlays" / "dev" / "kustomization.yaml"
    overlay = yaml.safe_load(kustomization.read_text())
    digest = "sha256:" + "ab" * 32
    for image in overlay["images"]:
        if image["name"].endswith("/trainer"):
            image.pop("newTag")
            image["digest"] = digest
    kustomization.write_text(yaml.safe_dump(overlay, sort_keys=False))
    objects = [d for d in yaml.safe_load_all(render_overlay(tmp_path / "overlays" / "dev")) if d]
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Job"]
    pods += [o["spec"]["jobTemplate"]["spec"]["template"]["spec"] for o in objects if o["kind"] == "CronJob"]
    assert len(pods) == 2
    for pod in pods:
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert container["image"] == f"{data['images']['trainer']['repository']}@{digest}"
        assert env["TRAINER_IMAGE"] == container["image"]
        assert env["MODEL_ROOT"] == "/models"


@pytest.mark.parametrize("overlay", ["staging", "prod", "prod-blue-green", "prod-canary"])
def test_a_serve_only_overlay_mounts_its_model_store_and_never_trains(platform, rendered, overlay):
    env = next(e for e in platform.environments if e.overlay == f"overlays/{overlay}")
    assert not env.train
    objects = rendered[overlay]
    assert not [o for o in objects if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "training"]
    claims = {o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"}
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        mounted = {v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v}
        assert mounted and mounted <= claims, deployment["metadata"]["name"]


def _project_kinds(tmp_path, change) -> set[tuple[str, str]]:
    shutil.copytree(REPO_ROOT / "overlays", tmp_path / "overlays")
    data = yaml.safe_load((REPO_ROOT / "platform.yaml").read_text())
    change(data)
    config = tmp_path / "platform.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    tree = render_tree(config)
    project = yaml.safe_load(tree[f"argocd/appproject-{data['argocd']['project']}.yaml"])
    return {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]}


def test_the_appproject_allows_training_kinds_only_where_an_environment_trains(tmp_path):
    def serve_only(data):
        for env in data["environments"]:
            env["train"] = False

    def canary_trains_on_a_schedule(data):
        serve_only(data)
        data["environments"][-1]["train"] = True
        data["training"]["schedule"] = "0 3 * * 0"

    none = _project_kinds(tmp_path / "none", serve_only)
    assert ("batch", "Job") not in none and ("batch", "CronJob") not in none
    assert ("policy", "PodDisruptionBudget") in none and ("gateway.networking.k8s.io", "HTTPRoute") in none
    canary = _project_kinds(tmp_path / "canary", canary_trains_on_a_schedule)
    assert canary - none == {("batch", "Job"), ("batch", "CronJob")}


WAVE = "argocd.argoproj.io/sync-wave"


@pytest.mark.parametrize("overlay", ["dev", "staging", "prod", "prod-blue-green", "prod-canary"])
def test_the_model_store_is_in_the_wave_of_its_first_consumer(rendered, overlay):
    """With a WaitForFirstConsumer storage class a claim binds only once a pod uses it, and Argo CD
    waits for a wave to be healthy: a claim in a wave before all its consumers never binds (what
    a serve-only overlay would do with the training hook's wave)."""
    objects = rendered[overlay]
    (claim,) = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    consumers = []
    for obj in objects:
        template = obj["spec"].get("template") if obj["kind"] in ("Deployment", "Job") else None
        volumes = template["spec"].get("volumes", []) if template else []
        if any(v.get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"] for v in volumes):
            consumers.append(int(obj["metadata"].get("annotations", {}).get(WAVE, "0")))
    assert consumers
    assert int(claim["metadata"].get("annotations", {}).get(WAVE, "0")) == min(consumers)
