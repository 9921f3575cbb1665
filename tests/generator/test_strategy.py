"""The Strategy type is the one place that knows the strategies: everything else that names them
(the platform schema, the release-file schema, the generated components) agrees with it."""

from __future__ import annotations

import json

import pytest

from generator.config import SCHEMA_PATH
from generator.paths import REPO_ROOT
from generator.release.files import SCHEMA_PATH as RELEASE_FILES_SCHEMA
from generator.strategy import ALL_VARIANTS, BLUE_GREEN, CANARY, ROLLING, STRATEGIES, Strategy


def test_the_platform_schema_offers_exactly_the_strategies():
    schema = json.loads(SCHEMA_PATH.read_text())
    environment = schema["properties"]["environments"]["items"]
    assert environment["properties"]["strategy"]["enum"] == list(STRATEGIES)


@pytest.mark.parametrize("strategy", STRATEGIES.values(), ids=str)
def test_every_strategy_has_its_generated_components_and_schemas_for_its_files(strategy: Strategy):
    components = REPO_ROOT / "overlays" / "components"
    assert (components / strategy.name / "kustomization.yaml").is_file()
    assert (components / strategy.training_component / "kustomization.yaml").is_file()
    definitions = json.loads(RELEASE_FILES_SCHEMA.read_text())["$defs"]
    assert set(strategy.release_files) <= set(definitions)


def test_variants_are_told_apart_by_name_across_strategies():
    """A variant's name suffixes its objects' names; one name in two strategies would make
    ``release_config_map_model`` ambiguous."""
    assert len(set(ALL_VARIANTS)) == len(ALL_VARIANTS)
    assert ROLLING.released_variants == ("",) and not ROLLING.progressive
    assert BLUE_GREEN.released_variants == BLUE_GREEN.variants and CANARY.released_variants == CANARY.variants


def test_a_command_for_another_strategy_names_the_one_that_fits():
    with pytest.raises(Exception, match=r"prod is a canary environment, not a blue-green one \(use `make canary`\)"):
        CANARY.require(BLUE_GREEN, "prod")
    with pytest.raises(Exception, match=r"dev is a rolling environment, not a canary one$"):
        ROLLING.require(CANARY, "dev")
    BLUE_GREEN.require(BLUE_GREEN, "prod")  # no refusal
