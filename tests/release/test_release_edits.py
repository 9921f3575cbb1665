"""Every editing command in a temporary repository: the exact file edits, and every refusal
leaves the files byte-identical with exit code 2."""

from __future__ import annotations

import difflib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from release_support import DIGEST_A, DIGEST_B, TAG_A, Repo, git, nothing_to_do, route_weights

from generator.release import overlay as overlay_module
from generator.release.canary import split_replicas
from generator.release.git import ALLOW_DIRTY_ENV_VAR as ALLOW_DIRTY
from generator.synthesis.delivery import WEIGHTED_RULE
from generator.tools import ToolError

SERVER = "registry.example.com/ml/inference-server"
TRAINER = "registry.example.com/ml/trainer"


def changed_lines(before: bytes, after: bytes) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.decode().splitlines(), after.decode().splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def refuse(repo: Repo, command: str, *args: str, says: str) -> None:
    """The command exits 2 with one line naming the reason, and no file changes."""
    before = repo.snapshot()
    result = repo.run(command, *args)
    assert result.code == 2, (result.out, result.err)
    assert says.lower() in result.err.lower(), result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert repo.snapshot() == before


def dirty(repo: Repo) -> None:
    path = repo.root / "overlays/prod/release.yaml"
    path.write_text(path.read_text() + "# a local edit\n")


def canary_candidate(repo: Repo, digest: str = DIGEST_A, version: str = "2") -> None:
    """Put a candidate on the canary track of prod-canary and commit it (by digest: production)."""
    assert repo.run("set-image", "--env", "prod-canary", "--image", "server", "--digest", digest).code == 0
    path = repo.root / "overlays/prod-canary/release.yaml"
    text = path.read_text()
    head, sep, tail = text.partition("name: mnist-release-canary")
    path.write_text(head + sep + tail.replace('MODEL_VERSION: "1"', f'MODEL_VERSION: "{version}"', 1))
    repo.commit("canary candidate")


# --- set-image -------------------------------------------------------------------------------


def test_set_image_changes_exactly_the_pin_line(repo: Repo):
    before = (repo.root / "overlays/dev/kustomization.yaml").read_bytes()
    trainer = repo.image("dev", TRAINER)
    result = repo.run("set-image", "--env", "dev", "--image", "server", "--tag", TAG_A)
    assert result.code == 0, result.err
    after = (repo.root / "overlays/dev/kustomization.yaml").read_bytes()
    changed = changed_lines(before, after)  # the digest line becomes a tag line, in place
    assert len(changed) == 2 and changed[0].startswith("-    digest: sha256:"), changed
    assert changed[1] == f'+    newTag: "{TAG_A}"'
    assert repo.image("dev", SERVER) == {"name": SERVER, "newTag": TAG_A}
    assert repo.image("dev", TRAINER) == trainer  # the trainer is untouched
    assert "overlays/dev/kustomization.yaml" in result.out


def test_digest_replaces_tag_in_place_and_tag_replaces_digest(repo: Repo):
    assert repo.run("set-image", "--env", "staging", "--image", "trainer", "--digest", DIGEST_A).code == 0
    entry = repo.image("staging", TRAINER)
    assert entry == {"name": TRAINER, "digest": DIGEST_A}
    assert list(entry) == ["name", "digest"]
    repo.commit("digest")
    assert repo.run("set-image", "--env", "staging", "--image", "trainer", "--tag", TAG_A).code == 0
    assert repo.image("staging", TRAINER) == {"name": TRAINER, "newTag": TAG_A}


def test_set_image_numeric_looking_tag_stays_a_string(repo: Repo):
    assert repo.run("set-image", "--env", "dev", "--image", "server", "--tag", "1234567").code == 0
    assert repo.image("dev", SERVER)["newTag"] == "1234567"


@pytest.mark.parametrize(
    "env, args, entry",
    [
        ("prod-canary", (), "inference-server-canary"),  # default: the canary track
        ("prod-blue-green", (), "inference-server-green"),  # default: the idle slot
        ("prod-blue-green", ("--variant", "blue"), "inference-server-blue"),
        ("prod-canary", ("--variant", "stable"), "inference-server-stable"),
    ],
)
def test_set_image_on_variants(repo: Repo, env, args, entry):
    others = {e["name"]: e for e in repo.kustomization(env)["images"] if e["name"] != entry}
    result = repo.run("set-image", "--env", env, "--image", "server", "--digest", DIGEST_A, *args)
    assert result.code == 0, result.err
    assert repo.image(env, entry) == {"name": entry, "newName": SERVER, "digest": DIGEST_A}
    assert {e["name"]: e for e in repo.kustomization(env)["images"] if e["name"] != entry} == others
    if args and args[1] in ("blue", "stable"):
        assert "LIVE" in result.out


def test_allow_dirty_batches_two_edits(repo: Repo, monkeypatch):
    assert repo.run("set-image", "--env", "dev", "--image", "server", "--tag", TAG_A).code == 0
    assert repo.run("set-image", "--env", "dev", "--image", "trainer", "--tag", TAG_A).code == 2
    assert repo.run("set-image", "--env", "dev", "--image", "trainer", "--tag", TAG_A, "--allow-dirty").code == 0
    monkeypatch.setenv("ML_GITOPS_ALLOW_DIRTY", "1")
    assert repo.run("set-image", "--env", "staging", "--image", "trainer", "--tag", TAG_A).code == 0
    assert repo.image("dev", TRAINER)["newTag"] == repo.image("staging", TRAINER)["newTag"] == TAG_A


@pytest.mark.parametrize(
    "args, says",
    [
        (("--env", "qa", "--image", "server", "--tag", TAG_A), "unknown environment 'qa'"),
        (("--env", "dev", "--image", "sidecar", "--tag", TAG_A), "IMAGE must be one of"),
        (("--env", "dev", "--image", "server", "--tag", "has space"), "not a valid image tag"),
        (("--env", "dev", "--image", "server", "--tag", "latest"), "mutable"),
        (("--env", "dev", "--image", "server", "--digest", "sha256:abc"), "not a valid digest"),
        (("--env", "dev", "--image", "server", "--tag", TAG_A, "--digest", DIGEST_A), "exactly one"),
        (("--env", "dev", "--image", "server"), "exactly one"),
        (("--env", "dev", "--image", "server", "--tag", TAG_A, "--variant", "blue"), "rolling"),
        (("--env", "prod-canary", "--image", "trainer", "--tag", TAG_A, "--variant", "canary"), "shared"),
        (("--env", "prod-canary", "--image", "server", "--tag", TAG_A, "--variant", "blue"), "not 'blue'"),
        (("--env", "dev", "--image", "server", "--tag", TAG_A, "--bogus"), "unrecognized arguments"),
    ],
)
def test_set_image_refusals(repo: Repo, args, says):
    refuse(repo, "set-image", *args, says=says)


def test_set_image_refuses_on_a_dirty_tree(repo: Repo):
    dirty(repo)
    refuse(repo, "set-image", "--env", "dev", "--image", "server", "--tag", TAG_A, says="uncommitted changes")


def test_set_image_default_target_is_refused_mid_canary(repo: Repo):
    canary_candidate(repo)
    assert repo.run("canary", "--env", "prod-canary", "--weight", "10").code == 0
    repo.commit("canary 10")
    refuse(
        repo, "set-image", "--env", "prod-canary", "--image", "server", "--digest", DIGEST_B, says="canary in progress"
    )
    result = repo.run(
        "set-image", "--env", "prod-canary", "--image", "server", "--digest", DIGEST_B, "--variant", "canary"
    )  # explicit: allowed, and said to be live
    assert result.code == 0 and "LIVE" in result.out


def test_require_digest_refuses_a_tag_but_takes_a_digest(repo: Repo):
    assert repo.platform_environment("prod")["requireDigest"] is True  # every production environment
    refuse(repo, "set-image", "--env", "prod", "--image", "server", "--tag", TAG_A, says="requires image digests")
    assert repo.run("set-image", "--env", "prod", "--image", "server", "--digest", DIGEST_A).code == 0
    assert repo.image("prod", SERVER) == {"name": SERVER, "digest": DIGEST_A}


# --- promote ---------------------------------------------------------------------------------


def test_promote_copies_images_and_model_version(repo: Repo):
    assert repo.run("set-image", "--env", "dev", "--image", "server", "--digest", DIGEST_A).code == 0
    assert repo.run("set-image", "--env", "dev", "--image", "trainer", "--tag", TAG_A, "--allow-dirty").code == 0
    card = (repo.root / "registry/mnist/1.yaml").read_text()  # staging's gates need a card for 7
    (repo.root / "registry/mnist/7.yaml").write_text(card.replace("\nversion: 1\n", "\nversion: 7\n"))
    git(repo.root, "add", "registry")
    path = repo.root / "overlays/dev/release.yaml"
    path.write_text(path.read_text().replace('MODEL_VERSION: "1"', 'MODEL_VERSION: "7"'))
    repo.commit("dev: new build and model 7")
    before = repo.snapshot()
    result = repo.run("promote", "--from", "dev", "--to", "staging")
    assert result.code == 0, result.err
    assert repo.image("staging", SERVER) == {"name": SERVER, "digest": DIGEST_A}
    assert repo.image("staging", TRAINER) == {"name": TRAINER, "newTag": TAG_A}
    assert repo.versions("staging") == {"mnist-release": "7"}
    changed = {p for p, data in repo.snapshot().items() if before[p] != data}
    assert changed == {"overlays/staging/kustomization.yaml", "overlays/staging/release.yaml"}
    # the version stays a quoted string, comments stay
    text = (repo.root / "overlays/staging/release.yaml").read_text()
    assert 'MODEL_VERSION: "7"' in text and text.startswith("# ")


def test_promote_into_canary_goes_to_the_canary_track(repo: Repo):
    assert repo.run("set-image", "--env", "staging", "--image", "server", "--digest", DIGEST_A).code == 0
    repo.commit("staging build")
    stable_before = repo.image("prod-canary", "inference-server-stable")
    weights, replicas = repo.weights(), repo.replicas("prod-canary")
    result = repo.run("promote", "--from", "staging", "--to", "prod-canary")
    assert result.code == 0, result.err
    assert repo.image("prod-canary", "inference-server-canary")["digest"] == DIGEST_A
    assert repo.image("prod-canary", "inference-server-stable") == stable_before
    assert repo.weights() == weights and repo.replicas("prod-canary") == replicas  # no traffic yet
    assert "make canary ENV=prod-canary" in result.out


def test_promote_into_blue_green_goes_to_the_idle_slot(repo: Repo):
    assert repo.run("set-image", "--env", "staging", "--image", "server", "--digest", DIGEST_A).code == 0
    repo.commit("staging build")
    active = repo.slots()["mnist-server"]
    idle = repo.slots()["mnist-server-preview"]
    active_before = repo.image("prod-blue-green", f"inference-server-{active}")
    assert repo.run("promote", "--from", "staging", "--to", "prod-blue-green").code == 0
    assert repo.image("prod-blue-green", f"inference-server-{idle}")["digest"] == DIGEST_A
    assert repo.image("prod-blue-green", f"inference-server-{active}") == active_before
    assert repo.slots()["mnist-server"] == active  # promote never switches


def test_promote_from_canary_reads_the_stable_track(repo: Repo):
    canary_candidate(repo)  # canary: DIGEST_A, model 2; stable: the committed image, model 1
    assert repo.run("set-image", "--env", "prod", "--image", "server", "--digest", DIGEST_B).code == 0
    repo.commit("prod elsewhere")
    assert repo.run("promote", "--from", "prod-canary", "--to", "prod").code == 0
    assert repo.image("prod", SERVER)["digest"] == repo.image("prod-canary", "inference-server-stable")["digest"]
    assert repo.versions("prod") == {"mnist-release": repo.versions("prod-canary")["mnist-release-stable"]}


def test_promote_from_blue_green_reads_the_active_slot(repo: Repo):
    active, idle = repo.slots()["mnist-server"], repo.slots()["mnist-server-preview"]
    live = repo.image("prod-blue-green", f"inference-server-{active}")["digest"]
    assert repo.run("set-image", "--env", "prod-blue-green", "--image", "server", "--digest", DIGEST_A).code == 0
    assert repo.run("set-image", "--env", "prod", "--image", "server", "--digest", DIGEST_B, "--allow-dirty").code == 0
    repo.commit("idle slot candidate")
    assert repo.image("prod-blue-green", f"inference-server-{idle}")["digest"] == DIGEST_A
    assert repo.run("promote", "--from", "prod-blue-green", "--to", "prod").code == 0
    assert repo.image("prod", SERVER)["digest"] == live  # the active slot's, not the idle candidate


@pytest.mark.parametrize(
    "args, says",
    [
        (("--from", "staging", "--to", "staging"), "both 'staging'"),
        (("--from", "qa", "--to", "prod"), "unknown environment 'qa'"),
        (("--from", "staging", "--to", "production"), "unknown environment 'production'"),
        (
            (
                "--from",
                "staging",
            ),
            "required",
        ),
    ],
)
def test_promote_refusals(repo: Repo, args, says):
    refuse(repo, "promote", *args, says=says)


def test_promote_refuses_on_a_dirty_tree(repo: Repo):
    assert repo.run("set-image", "--env", "staging", "--image", "server", "--tag", TAG_A).code == 0
    repo.commit("staging build")
    dirty(repo)
    refuse(repo, "promote", "--from", "staging", "--to", "prod", says="uncommitted changes")


def test_promote_refuses_a_tag_into_a_digest_only_environment(repo: Repo):
    assert repo.run("set-image", "--env", "staging", "--image", "server", "--tag", TAG_A).code == 0
    repo.commit("staging build, by tag")
    refuse(repo, "promote", "--from", "staging", "--to", "prod", says="requires image digests")


def test_promote_refuses_while_a_canary_takes_traffic(repo: Repo):
    canary_candidate(repo)
    assert repo.run("canary", "--env", "prod-canary", "--weight", "10").code == 0
    repo.commit("canary 10")
    assert repo.run("set-image", "--env", "staging", "--image", "server", "--digest", DIGEST_B).code == 0
    repo.commit("staging build")
    refuse(repo, "promote", "--from", "staging", "--to", "prod-canary", says="canary in progress")


# --- canary ----------------------------------------------------------------------------------


def test_canary_weight_sets_weights_and_replica_split(repo: Repo):
    canary_candidate(repo)
    total = sum(repo.replicas("prod-canary").values())
    traffic_before = (repo.root / "overlays/prod-canary/traffic.yaml").read_bytes()
    result = repo.run("canary", "--env", "prod-canary", "--weight", "25")
    assert result.code == 0, result.err
    assert repo.weights() == {"mnist-server-stable": 75, "mnist-server-canary": 25}
    expected_stable, expected_canary = split_replicas(total, 25)
    assert repo.replicas("prod-canary") == {
        "mnist-server-stable": expected_stable,
        "mnist-server-canary": expected_canary,
    }
    assert expected_canary >= 1 and expected_stable + expected_canary == max(total, 2)
    # only the two weight lines of traffic.yaml change; its comments and layout stay
    assert changed_lines(traffic_before, (repo.root / "overlays/prod-canary/traffic.yaml").read_bytes()) == [
        "-  stable: 100",
        "-  canary: 0",
        "+  stable: 75",
        "+  canary: 25",
    ]
    route = next(d for d in repo.render("prod-canary") if d["kind"] == "HTTPRoute")
    assert [ref.get("weight") for ref in route["spec"]["rules"][WEIGHTED_RULE]["backendRefs"]] == [75, 25]


def test_canary_weight_moves_the_grpc_route_with_the_http_route(repo: Repo):
    """One traffic.yaml edit sets both routes: gRPC Predict calls split as REST predicts do."""
    before = repo.render("prod-canary")
    assert [d["kind"] for d in before].count("GRPCRoute") == 1
    assert route_weights(before, "GRPCRoute") == route_weights(before, "HTTPRoute") == repo.weights()
    canary_candidate(repo)
    assert repo.run("canary", "--env", "prod-canary", "--weight", "25").code == 0
    after = repo.render("prod-canary")
    assert route_weights(after, "GRPCRoute") == route_weights(after, "HTTPRoute") == repo.weights()
    assert repo.weights() == {"mnist-server-stable": 75, "mnist-server-canary": 25}


def test_canary_100_promotes_the_canary_to_stable(repo: Repo):
    canary_candidate(repo, version="5")
    assert repo.run("canary", "--env", "prod-canary", "--weight", "50").code == 0
    repo.commit("canary 50")
    total = sum(repo.replicas("prod-canary").values())
    canary_image = repo.image("prod-canary", "inference-server-canary")
    result = repo.run("canary", "--env", "prod-canary", "--weight", "100")
    assert result.code == 0, result.err
    stable = repo.image("prod-canary", "inference-server-stable")
    assert {k: v for k, v in stable.items() if k != "name"} == {k: v for k, v in canary_image.items() if k != "name"}
    assert repo.versions("prod-canary") == {"mnist-release-stable": "5", "mnist-release-canary": "5"}
    assert repo.weights() == {"mnist-server-stable": 100, "mnist-server-canary": 0}
    assert repo.replicas("prod-canary") == {"mnist-server-stable": total, "mnist-server-canary": 0}


def test_canary_0_aborts_and_keeps_the_candidate_visible(repo: Repo):
    canary_candidate(repo)
    assert repo.run("canary", "--env", "prod-canary", "--weight", "50").code == 0
    repo.commit("canary 50")
    total = sum(repo.replicas("prod-canary").values())
    stable_before = repo.image("prod-canary", "inference-server-stable")
    assert repo.run("canary", "--env", "prod-canary", "--weight", "0").code == 0
    assert repo.weights() == {"mnist-server-stable": 100, "mnist-server-canary": 0}
    assert repo.replicas("prod-canary") == {"mnist-server-stable": total, "mnist-server-canary": 0}
    assert repo.image("prod-canary", "inference-server-stable") == stable_before
    assert repo.image("prod-canary", "inference-server-canary")["digest"] == DIGEST_A
    repo.commit("abort")
    refuse(repo, "canary", "--env", "prod-canary", "--weight", "100", says="takes no traffic")


@pytest.mark.parametrize(
    "weight, says",
    [("101", "from 0 to 100"), ("-1", "from 0 to 100"), ("abc", "integer"), ("2.5", "integer"), ("", "integer")],
)
def test_canary_refuses_bad_weights(repo: Repo, weight, says):
    canary_candidate(repo)
    refuse(repo, "canary", "--env", "prod-canary", "--weight", weight, says=says)


@pytest.mark.parametrize(
    "env, says", [("prod-blue-green", "not a canary"), ("dev", "not a canary"), ("nowhere", "unknown environment")]
)
def test_canary_refuses_other_environments(repo: Repo, env, says):
    refuse(repo, "canary", "--env", env, "--weight", "10", says=says)


def test_canary_refuses_no_candidate_and_dirty_tree_and_says_when_there_is_nothing_to_do(repo: Repo):
    refuse(repo, "canary", "--env", "prod-canary", "--weight", "10", says="promote a candidate first")
    nothing_to_do(repo, "canary", "--env", "prod-canary", "--weight", "0", says="nothing to change")
    canary_candidate(repo)
    assert repo.run("canary", "--env", "prod-canary", "--weight", "10").code == 0
    repo.commit("canary 10")
    nothing_to_do(repo, "canary", "--env", "prod-canary", "--weight", "10", says="already at canary weight 10")
    dirty(repo)
    refuse(repo, "canary", "--env", "prod-canary", "--weight", "50", says="uncommitted changes")
    refuse(repo, "canary", "--env", "prod-canary", "--weight", "50", says=f"--allow-dirty, or {ALLOW_DIRTY}=1")


def test_a_step_that_changes_nothing_exits_4_not_2(repo: Repo):
    """Already so is not bad input: a script can tell them apart (the start state pins one image
    everywhere, and staging and prod run the same release)."""
    digest = repo.image("dev", SERVER)["digest"]
    nothing_to_do(repo, "set-image", "--env", "dev", "--image", "server", "--digest", digest, says="already pins")
    nothing_to_do(repo, "promote", "--from", "staging", "--to", "prod", says="already runs")


@pytest.mark.parametrize("command", ["switch", "canary", "set-image", "pin-model"])
def test_a_missing_env_names_the_environments(repo: Repo, command: str):
    args = {"canary": ["--weight", "10"], "set-image": ["--image", "server", "--tag", TAG_A]}.get(command, [])
    refuse(repo, command, "--env", "", *args, says="name an environment with ENV= (platform.yaml has: dev, staging")


@given(total=st.integers(0, 60), weight=st.integers(0, 100))
def test_split_replicas_properties(total, weight):
    stable, canary = split_replicas(total, weight)
    if weight in (0, 100):
        assert (stable, canary) == (total, 0)
        return
    assert canary >= 1 and stable >= 1
    assert stable + canary == max(total, 2)
    n = stable + canary
    # the closest split with both tracks alive (ties toward stable)
    best = min(range(1, n), key=lambda c: (abs(100 * c - weight * n), c))
    assert canary == best


# --- switch ----------------------------------------------------------------------------------


def test_switch_flips_selectors_and_never_lowers_capacity(repo: Repo):
    slots, replicas = repo.slots(), repo.replicas("prod-blue-green")
    active, idle = (f"mnist-server-{slots[name]}" for name in ("mnist-server", "mnist-server-preview"))
    assert replicas[idle] < replicas[active]
    images = repo.kustomization("prod-blue-green")["images"]
    before = (repo.root / "overlays/prod-blue-green/active-slot.yaml").read_bytes()
    result = repo.run("switch", "--env", "prod-blue-green")
    assert result.code == 0, result.err
    assert repo.slots() == {
        "mnist-server": slots["mnist-server-preview"],
        "mnist-server-preview": slots["mnist-server"],
    }
    # The new active slot gets the serving capacity; the old one stays warm for a switch back.
    assert repo.replicas("prod-blue-green") == {active: replicas[active], idle: replicas[active]}
    assert repo.kustomization("prod-blue-green")["images"] == images
    after = (repo.root / "overlays/prod-blue-green/active-slot.yaml").read_bytes()
    assert len(changed_lines(before, after)) == 4  # two selector lines, nothing else
    repo.commit("switch")
    assert repo.run("switch", "--env", "prod-blue-green").code == 0
    assert repo.slots() == slots
    assert repo.replicas("prod-blue-green") == {active: replicas[active], idle: replicas[active]}


@pytest.mark.parametrize(
    "env, says", [("prod-canary", "not a blue-green"), ("staging", "not a blue-green"), ("blue", "unknown environment")]
)
def test_switch_refuses_other_environments(repo: Repo, env, says):
    refuse(repo, "switch", "--env", env, says=says)


def test_switch_refuses_on_a_dirty_tree(repo: Repo):
    dirty(repo)
    refuse(repo, "switch", "--env", "prod-blue-green", says="uncommitted changes")


def test_dry_run_shows_the_diff_and_writes_nothing(repo: Repo):
    canary_candidate(repo)
    dirty(repo)  # a dry run writes nothing, so it does not need a clean tree
    before = repo.snapshot()
    result = repo.run("canary", "--env", "prod-canary", "--weight", "25", "--dry-run")
    assert result.code == 0, result.err
    assert "dry run: nothing written" in result.out
    assert "+++ b/overlays/prod-canary/traffic.yaml" in result.out and "+  canary: 25" in result.out
    assert repo.snapshot() == before


# --- safety of the write -----------------------------------------------------------------------


def test_an_edit_that_no_longer_builds_is_rolled_back(repo: Repo, monkeypatch):
    def broken(path):
        raise ToolError("kubectl kustomize failed:\nError: simulated")

    monkeypatch.setattr(overlay_module, "render", broken)
    before = repo.snapshot()
    result = repo.run("switch", "--env", "prod-blue-green")
    assert result.code == 3
    assert "restored" in result.err
    assert repo.snapshot() == before  # no partial edit, no temporary file left behind
