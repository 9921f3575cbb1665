"""The generated layout is a sum of parts: an overlay is the base, its strategy's server component,
that strategy's training component where the environment trains, and monitoring. No part deletes
what another renders; the one replacement is the training component pointing the servers at its
model store instead of a model image. Each environment renders exactly its parts."""

from __future__ import annotations

import shutil

import pytest
import yaml

from generator.paths import PREVIEW_OVERLAY, REPO_ROOT
from generator.strategy import STRATEGIES
from generator.synthesis.synth import render_tree, write_tree
from generator.tools import render_overlay

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
            if not isinstance(doc, dict):
                continue  # empty, or a patch's operations
            if doc.get("kind") in ("Kustomization", "Component"):
                found += [("ConfigMap", g["name"]) for g in doc.get("configMapGenerator", [])]
            elif "metadata" in doc:
                found.append((doc["kind"], doc["metadata"]["name"]))
    return found


def test_nothing_is_deleted_and_only_training_replaces_the_servers_pod_spec(tree):
    """A training component's only changes to what another part renders: the servers' pod spec
    (reading the claim), and their NetworkPolicy's egress, closed again (they pull nothing)."""
    for path, data in tree.items():
        if path.startswith(PREVIEW_OVERLAY + "/"):
            continue  # the preview drops what it must not run: test_preview_objects.py
        assert b"$patch" not in data, path
        for doc in yaml.safe_load_all(data):
            if not isinstance(doc, dict):
                continue
            for patch in doc.get("patches", []):
                assert "delete" not in patch.get("patch", ""), path
                if "remove" in patch.get("patch", ""):
                    assert path.startswith(f"{COMPONENTS}/training-"), path
                    assert yaml.safe_load(patch["patch"]) == [{"op": "remove", "path": "/spec/egress"}]
                    assert patch["target"] == {"kind": "NetworkPolicy", "name": "mnist-server"}
                if "path" in patch:
                    assert path.startswith(f"{COMPONENTS}/training-"), path
                    operations = yaml.safe_load(tree[path.rsplit("/", 1)[0] + "/" + patch["path"]])
                    assert [(o["op"], o["path"]) for o in operations] == [("replace", "/spec/template/spec")]
                    assert patch["target"]["kind"] == "Deployment"


@pytest.mark.parametrize("strategy", STRATEGIES.values(), ids=str)
def test_the_parts_of_a_strategy_never_render_the_same_object(tree, strategy):
    """Base, server component, training component and monitoring are disjoint, so adding one
    never overrides another's object (what the deleted-and-re-added layout did)."""
    parts = ["overlays/base", f"{COMPONENTS}/{strategy}", f"{COMPONENTS}/{strategy.training_component}"]
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
        ("NetworkPolicy", "default-deny"),
        ("NetworkPolicy", "mnist-server"),
        ("Service", "mnist-server"),
        ("ServiceAccount", "mnist-server"),
    ]


@pytest.mark.parametrize("overlay", ["dev", "staging", "prod", "prod-blue-green", "prod-canary"])
def test_each_overlay_renders_exactly_the_sum_of_its_parts(tree, platform, rendered, overlay):
    env = next(e for e in platform.environments if e.overlay == f"overlays/{overlay}")
    parts = ["overlays/base", f"{COMPONENTS}/{env.strategy}", f"{COMPONENTS}/monitoring"]
    if env.train:
        parts.append(f"{COMPONENTS}/{env.strategy.training_component}")
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
            image.pop("newTag", None)
            image["digest"] = digest  # another digest than the one committed
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


def _model_images(pod: dict) -> list[str]:
    images = [v["image"]["reference"] for v in pod["volumes"] if "image" in v]
    for container in pod.get("initContainers", []):
        images += [e["value"] for e in container.get("env", []) if e["name"] == "MODEL_IMAGE"]
    return images


@pytest.mark.parametrize("overlay", ["staging", "prod", "prod-blue-green", "prod-canary"])
def test_a_serve_only_overlay_pulls_the_model_image_its_card_records_and_has_no_claim(platform, rendered, overlay):
    env = next(e for e in platform.environments if e.overlay == f"overlays/{overlay}")
    assert not env.train
    objects = rendered[overlay]
    assert not [o for o in objects if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "training"]
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    releases = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    assert deployments
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
        server = pod["containers"][0]
        release = next(e for e in server["env"] if e["name"] == "MODEL_VERSION")["valueFrom"]["configMapKeyRef"]
        card = yaml.safe_load(
            (REPO_ROOT / "registry" / "mnist" / f"{releases[release['name']]['MODEL_VERSION']}.yaml").read_text()
        )
        assert _model_images(pod) == [f"{card['artifact']['repository']}@{card['artifact']['digest']}"]
        env_values = {e["name"]: e.get("value") for e in server["env"]}
        assert env_values["MODEL_VERSION_PATH"] == "/model-image/model"


def test_a_training_overlay_serves_from_its_model_store(rendered):
    objects = rendered["dev"]
    [policy] = [o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "mnist-server"]
    assert "Egress" in policy["spec"]["policyTypes"] and "egress" not in policy["spec"]
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"] == ["model-store"]
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert _model_images(pod) == [] and "initContainers" not in pod
        claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
        assert claims == ["model-store"]


def test_image_volume_delivery_mounts_the_pinned_image_and_opens_no_egress(tmp_path):
    """platform.yaml's modelArtifacts.delivery: imageVolume: the kubelet pulls the pinned image, so
    the servers keep all egress denied; the default init container may reach DNS and the registry."""
    shutil.copytree(REPO_ROOT / "overlays", tmp_path / "overlays")
    shutil.copytree(REPO_ROOT / "registry", tmp_path / "registry")
    data = yaml.safe_load((REPO_ROOT / "platform.yaml").read_text())
    data["modelArtifacts"]["delivery"] = "imageVolume"
    data["modelArtifacts"]["pullSecret"] = "model-registry"  # pragma: allowlist secret
    config = tmp_path / "platform.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    write_tree(render_tree(config), tmp_path)
    objects = [d for d in yaml.safe_load_all(render_overlay(tmp_path / "overlays" / "staging")) if d]
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    [volume] = [v for v in pod["volumes"] if "image" in v]
    overlay = yaml.safe_load((tmp_path / "overlays" / "staging" / "kustomization.yaml").read_text())
    pin = next(i for i in overlay["images"] if i["name"] == "mnist-model")
    assert volume["image"]["reference"] == f"{pin['newName']}@{pin['digest']}"
    assert pod["imagePullSecrets"] == [{"name": "model-registry"}]
    [policy] = [o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "mnist-server"]
    assert "Egress" in policy["spec"]["policyTypes"] and "egress" not in policy["spec"]
    default = [d for d in yaml.safe_load_all(render_overlay(REPO_ROOT / "overlays" / "staging")) if d]
    [policy] = [o for o in default if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "mnist-server"]
    assert [rule["ports"][0]["port"] for rule in policy["spec"]["egress"]] == [53, 443]


def _project_kinds(tmp_path, change, env: str) -> set[tuple[str, str]]:
    shutil.copytree(REPO_ROOT / "overlays", tmp_path / "overlays")
    data = yaml.safe_load((REPO_ROOT / "platform.yaml").read_text())
    change(data)
    config = tmp_path / "platform.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    tree = render_tree(config)
    project = yaml.safe_load(tree[f"argocd/admin/appproject-{data['argocd']['project']}-{env}.yaml"])
    return {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]}


def test_each_appproject_allows_training_kinds_only_where_its_environment_trains(tmp_path):
    def serve_only(data):
        for env in data["environments"]:
            env["train"] = False

    def canary_trains_on_a_schedule(data):
        serve_only(data)
        data["environments"][-1]["train"] = True
        data["training"]["schedule"] = "0 3 * * 0"

    none = _project_kinds(tmp_path / "none", serve_only, "prod-canary")
    assert ("batch", "Job") not in none and ("batch", "CronJob") not in none
    assert ("policy", "PodDisruptionBudget") in none and ("gateway.networking.k8s.io", "HTTPRoute") in none
    assert ("gateway.networking.k8s.io", "GRPCRoute") in none
    canary = _project_kinds(tmp_path / "canary", canary_trains_on_a_schedule, "prod-canary")
    assert canary - none == {("batch", "Job"), ("batch", "CronJob"), ("", "PersistentVolumeClaim")}
    # The other environments' projects do not grow with the canary's training.
    rolling = _project_kinds(tmp_path / "rolling", canary_trains_on_a_schedule, "prod")
    assert ("batch", "Job") not in rolling and ("gateway.networking.k8s.io", "HTTPRoute") not in rolling
    assert ("gateway.networking.k8s.io", "GRPCRoute") not in rolling


WAVE = "argocd.argoproj.io/sync-wave"


@pytest.mark.parametrize("overlay", ["dev"])
def test_the_model_store_is_in_the_wave_of_its_first_consumer(rendered, overlay):
    """With a WaitForFirstConsumer storage class a claim binds only once a pod uses it, and Argo CD
    waits for a wave to be healthy: a claim in a wave before all its consumers never binds. (Only
    environments that train have a claim.)"""
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
