"""What the commands mean, proven on the rendered manifests (kustomize build), not the YAML text:
which pods each Service selects, and the traffic share from HTTPRoute weights and replica ratios."""

from __future__ import annotations

import pytest
from release_support import DIGEST_A, Repo, by_kind, model_version, pods_of, replica_shares, route_shares, server_image

from generator.release.canary import split_replicas

SERVER = "registry.example.com/ml/inference-server"


def assert_blue_green(repo: Repo, active: str, idle: str) -> None:
    docs = repo.render("prod-blue-green")
    assert pods_of(docs, "mnist-server") == {f"mnist-server-{active}"}
    assert pods_of(docs, "mnist-server-preview") == {f"mnist-server-{idle}"}
    deployments = by_kind(docs, "Deployment")
    for slot in (active, idle):
        labels = deployments[f"mnist-server-{slot}"]["spec"]["template"]["metadata"]["labels"]
        assert labels["slot"] == slot
    # the production Service's pods run what the overlay pins for the active slot
    pin = repo.image("prod-blue-green", f"inference-server-{active}")
    assert server_image(deployments[f"mnist-server-{active}"]) == f"{SERVER}@{pin['digest']}"
    assert (
        model_version(docs, deployments[f"mnist-server-{active}"])
        == repo.versions("prod-blue-green")[f"mnist-release-{active}"]
    )


def test_production_and_preview_services_select_exactly_their_slots_across_switches(repo: Repo):
    active, idle = repo.slots()["mnist-server"], repo.slots()["mnist-server-preview"]
    assert {active, idle} == {"blue", "green"}
    assert_blue_green(repo, active, idle)
    assert repo.run("set-image", "--env", "prod-blue-green", "--image", "server", "--digest", DIGEST_A).code == 0
    repo.commit("candidate in the idle slot")
    docs = repo.render("prod-blue-green")
    assert server_image(by_kind(docs, "Deployment")[f"mnist-server-{idle}"]) == f"{SERVER}@{DIGEST_A}"
    assert DIGEST_A not in server_image(by_kind(docs, "Deployment")[f"mnist-server-{active}"])
    capacity = repo.replicas("prod-blue-green")[f"mnist-server-{active}"]

    assert repo.run("switch", "--env", "prod-blue-green").code == 0
    repo.commit("switch")
    assert_blue_green(repo, idle, active)
    docs = repo.render("prod-blue-green")
    assert server_image(by_kind(docs, "Deployment")[f"mnist-server-{idle}"]) == f"{SERVER}@{DIGEST_A}"
    assert by_kind(docs, "Deployment")[f"mnist-server-{idle}"]["spec"]["replicas"] == capacity

    assert repo.run("switch", "--env", "prod-blue-green").code == 0
    assert_blue_green(repo, active, idle)


@pytest.mark.parametrize("weights", [(10, 50, 100), (25, 0)])
def test_canary_traffic_share_from_weights_and_replicas(repo: Repo, weights):
    assert repo.run("set-image", "--env", "prod-canary", "--image", "server", "--digest", DIGEST_A).code == 0
    repo.commit("candidate on the canary track")
    total = sum(repo.replicas("prod-canary").values())
    for weight in weights:
        result = repo.run("canary", "--env", "prod-canary", "--weight", str(weight))
        assert result.code == 0, result.err
        repo.commit(f"canary {weight}")
        docs = repo.render("prod-canary")
        route = by_kind(docs, "HTTPRoute")["mnist-server"]
        (rule,) = route["spec"]["rules"]  # predict alone, split by weight: no client picks a track
        assert sum(ref["weight"] for ref in rule["backendRefs"]) == 100
        assert all("headers" not in match for match in rule["matches"])
        shares = route_shares(docs)
        expected = weight if weight < 100 else 0
        assert shares == {"mnist-server-stable": 100 - expected, "mnist-server-canary": expected}
        # the Gateway tells each track's pods which track it chose
        for ref in rule["backendRefs"]:
            (header,) = ref["filters"][0]["requestHeaderModifier"]["set"]
            assert header == {"name": "x-model-track", "value": ref["name"].rsplit("-", 1)[1]}
        # per-track Services select exactly their track
        assert pods_of(docs, "mnist-server-stable") == {"mnist-server-stable"}
        assert pods_of(docs, "mnist-server-canary") == {"mnist-server-canary"}
        # without a Gateway the plain Service selects both tracks: traffic follows the replica ratio
        stable, canary = split_replicas(total, weight)
        assert pods_of(docs, "mnist-server") == {"mnist-server-stable", "mnist-server-canary"}
        pods = replica_shares(docs)
        assert pods["mnist-server-canary"] == pytest.approx(100 * canary / (stable + canary))
        if 0 < weight < 100:
            assert pods["mnist-server-canary"] > 0 and pods["mnist-server-stable"] > 0
            # the closest share the pod count allows
            n = stable + canary
            assert abs(pods["mnist-server-canary"] - weight) <= 100 / n / 2 + 1e-9 or canary == 1 or stable == 1
        else:
            assert pods["mnist-server-canary"] == 0
        deployments = by_kind(docs, "Deployment")
        assert server_image(deployments["mnist-server-canary"]) == f"{SERVER}@{DIGEST_A}"
        stable_image = server_image(deployments["mnist-server-stable"])
        assert (stable_image == f"{SERVER}@{DIGEST_A}") == (weight == 100)
