"""The generated Grafana dashboard is well formed: one data-source variable used by every panel,
target and query variable; every panel has a query and a unit; every query parses, selects the
Environment variable's namespace and reads only series the server exports or the rules record.
(Whether each query returns data is checked against a live Prometheus in test_live_prometheus.)"""

from __future__ import annotations

import promql_parser
import pytest
from monitoring_support import OVERLAYS, dashboards, rendered, rule_groups, rules_of

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    (board,) = dashboards(rendered("prod")).values()
    return board


def test_every_overlay_ships_the_same_dashboard(dashboard):
    for overlay in OVERLAYS:
        assert list(dashboards(rendered(overlay)).values()) == [dashboard], overlay


def test_one_datasource_variable_used_everywhere(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
    for panel in dashboard["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", DATASOURCE) == DATASOURCE, (panel["title"], target["refId"])


def test_every_panel_has_a_query_a_unit_and_its_own_place(dashboard):
    ids, cells = set(), set()
    for panel in dashboard["panels"]:
        title = panel["title"]
        assert panel["targets"], f"{title}: no query"
        assert all(t["expr"].strip() for t in panel["targets"]), f"{title}: empty query"
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), title
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
        assert panel["id"] not in ids, f"{title}: duplicate id"
        ids.add(panel["id"])
        x, y, w, h = (panel["gridPos"][k] for k in ("x", "y", "w", "h"))
        covered = {(col, row) for col in range(x, x + w) for row in range(y, y + h)}
        assert not covered & cells, f"{title}: overlaps another panel"
        assert x + w <= 24, f"{title}: wider than the dashboard"
        cells |= covered
    percent = [p for p in dashboard["panels"] if "ratio" in p["title"] or "slower" in p["title"]]
    assert percent and all(p["fieldConfig"]["defaults"]["unit"] == "percentunit" for p in percent)


def _selectors(expr: str) -> list:
    found = []
    promql_parser.walk(
        promql_parser.parse(expr.replace("$namespace", "ml-prod")),
        lambda node: found.append(node) if isinstance(node, promql_parser.VectorSelector) else None,
    )
    return found


def test_every_query_parses_and_selects_the_environment(dashboard):
    recorded = {r["record"] for r in rules_of(rule_groups(rendered("prod"))) if "record" in r}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            selectors = _selectors(target["expr"])
            assert selectors, (panel["title"], target["expr"])
            for selector in selectors:
                matchers = {(m.name, m.value) for m in selector.matchers.matchers}
                assert ("namespace", "ml-prod") in matchers, f"{panel['title']}: {selector.name} ignores $namespace"
                exported = selector.name.startswith("inference_") or selector.name == "up"
                assert exported or selector.name in recorded, f"{panel['title']}: unknown series {selector.name}"
