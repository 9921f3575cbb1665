"""Quality gates (generator/registry/gates.py): the gate names platform.schema.json accepts are
exactly the ones the code knows, each reads a metric every card has, and a miss says by how much."""

from __future__ import annotations

import json

import pytest

from generator.config import ConfigError, load_config
from generator.paths import REPO_ROOT
from generator.registry import gates
from generator.registry.cards import Card

PLATFORM_SCHEMA = json.loads((REPO_ROOT / "generator/platform.schema.json").read_text())
CARD_SCHEMA = json.loads((REPO_ROOT / "generator/model-card.schema.json").read_text())


def card(**metrics) -> Card:
    base = {"holdoutAccuracy": 0.97, "holdoutLoss": 0.110592, "holdoutExamples": 1000}
    return Card("registry/mnist/2.yaml", {"model": "mnist", "version": 2, "metrics": {**base, **metrics}})


def test_the_schemas_gates_are_the_codes_gates():
    assert set(gates.GATES) == set(PLATFORM_SCHEMA["$defs"]["gates"]["properties"])


def test_every_gate_reads_a_metric_every_card_has():
    required = CARD_SCHEMA["properties"]["metrics"]["required"]
    for name, gate in gates.GATES.items():
        assert gate.metric in required, name


def test_gates_are_per_environment_and_load_sorted(tmp_path):
    environment = PLATFORM_SCHEMA["properties"]["environments"]["items"]["properties"]
    assert environment["gates"] == {"$ref": "#/$defs/gates"}
    text = (REPO_ROOT / "platform.yaml").read_text()
    anchor = "    overlay: overlays/dev\n"
    assert text.count(anchor) == 1
    (tmp_path / "platform.yaml").write_text(
        text.replace(anchor, anchor + "    gates: {minAccuracy: 0.95, maxLoss: 0.2}\n")
    )
    for env in load_config(REPO_ROOT / "platform.yaml").environments:
        (tmp_path / env.overlay).mkdir(parents=True, exist_ok=True)
        (tmp_path / env.overlay / "kustomization.yaml").touch()
    envs = {env.name: env.gates for env in load_config(tmp_path / "platform.yaml").environments}
    assert envs["dev"] == (("maxLoss", 0.2), ("minAccuracy", 0.95))


@pytest.mark.parametrize(
    ("gate", "threshold", "says"),
    [
        ("minAccuracy", 0.99, "minAccuracy 0.99: holdoutAccuracy 0.97 is 0.02 below it"),
        ("maxLoss", 0.1, "maxLoss 0.1: holdoutLoss 0.110592 is 0.010592 above it"),
        ("minHoldoutExamples", 5000, "minHoldoutExamples 5000: holdoutExamples 1000 is 4000 below it"),
    ],
)
def test_a_missed_gate_says_which_and_by_how_much(gate, threshold, says):
    assert gates.misses(card(), {gate: threshold}) == [says]


@pytest.mark.parametrize(
    "met", [{"minAccuracy": 0.97}, {"minAccuracy": 0.5}, {"maxLoss": 0.110592}, {"minHoldoutExamples": 1000}]
)
def test_a_gate_met_exactly_or_better_is_no_miss(met):
    assert gates.misses(card(), met) == []


def test_several_misses_are_listed_in_gate_order():
    missed = gates.misses(card(), {"minHoldoutExamples": 2000, "minAccuracy": 0.98, "maxLoss": 0.2})
    assert [line.split(" ", 1)[0] for line in missed] == ["minAccuracy", "minHoldoutExamples"]


@pytest.mark.parametrize("gates_yaml", ["{minF1: 0.9}", "{minAccuracy: 1.5}", "{}"])
def test_platform_yaml_refuses_an_unknown_gate_or_an_impossible_threshold(tmp_path, gates_yaml):
    text = (REPO_ROOT / "platform.yaml").read_text()
    anchor = "    overlay: overlays/dev\n"
    (tmp_path / "platform.yaml").write_text(text.replace(anchor, anchor + f"    gates: {gates_yaml}\n"))
    for env in load_config(REPO_ROOT / "platform.yaml").environments:
        (tmp_path / env.overlay).mkdir(parents=True, exist_ok=True)
        (tmp_path / env.overlay / "kustomization.yaml").touch()
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "platform.yaml")
    assert any("environments[0].gates" in line for line in raised.value.problems), raised.value.problems
