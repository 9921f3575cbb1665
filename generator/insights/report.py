"""``index.html``: the insights as one self-contained page, a function of insights.json alone.

The figures per environment, three kinds of chart as inline SVG (``charts.py``: deployments per
week, lead time over time, the model lineage per environment), and per environment a ``<details>``
that drills down to the commits: every deployment in the window with its short id, time, action,
what changed and its failure mark, and the lineage rows. Inline CSS, no script, nothing fetched;
every text from git (subjects, names, images) is escaped. The same document gives the same bytes.
"""

from __future__ import annotations

import html
from typing import Any

from generator.insights import charts
from generator.insights.metrics import ALL, OK, duration

SHORT = 10
CSS = """
body { font-family: sans-serif; margin: 1.5rem auto; max-width: 78rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.85rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.t { white-space: nowrap; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 0.85em; } .muted { color: #777; }
tr.failed td { background: #fde8e8; } tr.caught td { background: #fff4dc; }
.mark { font-weight: bold; color: #b00020; } tr.caught .mark { color: #8a5a00; }
details { border: 1px solid #ddd; border-radius: 4px; margin: 0.5rem 0; padding: 0.25rem 0.75rem; }
summary { cursor: pointer; font-weight: bold; padding: 0.25rem 0; }
figure { margin: 1rem 0; } svg { max-width: 100%; height: auto; }
""".strip()


def e(value: object) -> str:
    """Text for the page: escaped, quotes included."""
    return html.escape(str(value), quote=True)


def _commit(sha: str | None) -> str:
    if not sha:
        return ""
    return f'<code title="{e(sha)}">{e(sha[:SHORT])}</code>'


def _quantiles(figure: dict[str, Any]) -> str:
    if figure["status"] != OK:
        return f'<span class="muted">{e(figure["status"])}</span> ({figure["samples"]})'
    q = figure["quantiles"]
    return f"{duration(q['p50'])} / {duration(q['p90'])} ({figure['samples']})"


def _figures_table(document: dict[str, Any]) -> str:
    head = (
        "<tr><th>environment</th><th>strategy</th><th>deployments</th><th>per week</th>"
        "<th>lead time p50 / p90 (commits)</th><th>change failures</th><th>caught by canary</th>"
        "<th>time to restore p50 / p90 (failures)</th><th>model lead time p50 / p90</th>"
        "<th>stage wait p50 / p90</th></tr>"
    )
    scopes = [(env, scope["strategy"], scope["figures"]) for env, scope in document["environments"].items()]
    body = []
    for name, strategy, f in [*scopes, (ALL, "", document["all"])]:
        cfr = f["changeFailureRate"]
        rate = f"{cfr['value']:.0%}" if cfr["value"] is not None else cfr["status"]
        per_week = "n/a" if f["deployments"]["perWeek"] is None else f"{f['deployments']['perWeek']:.2f}"
        link = e(name) if name == ALL else f'<a href="#env-{e(name)}">{e(name)}</a>'
        body.append(
            f"<tr><td>{link}</td><td>{e(strategy)}</td>"
            f'<td class="n">{f["deployments"]["count"]}</td><td class="n">{per_week}</td>'
            f"<td>{_quantiles(f['leadTime'])}</td>"
            f"<td>{cfr['numerator']}/{cfr['denominator']} ({e(rate)})</td>"
            f'<td class="n">{cfr["caughtByCanary"]}</td>'
            f"<td>{_quantiles(f['timeToRestore'])}</td><td>{_quantiles(f['modelLeadTime'])}</td>"
            f"<td>{_quantiles(f['stageWait'])}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _failure_mark(row: dict[str, Any], caught: set[str]) -> tuple[str, str]:
    """The row's class and its failure cell."""
    if not row["failure"]:
        return "", ""
    kind = "caught" if row["commit"] in caught else "failed"
    text = "caught by the canary" if kind == "caught" else "change failure"
    cell = (
        f'<span class="mark">&#10007; {e(text)}</span> ({e(row["failure"])}), restored by '
        f"{_commit(row['restoredBy'])} after {duration(row['restoreSeconds'])}"
    )
    return f' class="{kind}"', cell


def _deployments_table(rows: list[dict[str, Any]], caught: set[str]) -> str:
    if not rows:
        return '<p class="muted">No deployment in the window.</p>'
    head = (
        "<tr><th>commit</th><th>time (UTC)</th><th>action</th><th>what changed</th>"
        "<th>commits carried</th><th>failure</th><th>subject</th></tr>"
    )
    body = []
    for row in rows:
        cls, failure = _failure_mark(row, caught)
        changes = "<br>".join(e(c) for c in row["changes"])
        cells = [
            _commit(row["commit"]),
            e(row["time"]),
            e(row["action"]),
            changes,
            str(row["carried"]),
            failure,
            e(row["subject"]),
        ]
        classes = ["", ' class="t"', "", "", ' class="n"', "", ""]
        body.append(f"<tr{cls}>" + "".join(f"<td{c}>{v}</td>" for c, v in zip(classes, cells, strict=True)) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _short_image(reference: str | None) -> str:
    """An image reference without its registry path, a digest cut to 12 hex digits."""
    if not reference:
        return "-"
    name = reference.rsplit("/", 1)[-1]
    if "@sha256:" in name:
        name = name[: name.index("@sha256:") + 8 + 12]
    return name


def _lineage_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    head = (
        "<tr><th>variant</th><th>model</th><th>version</th><th>digest</th><th>accuracy</th><th>traffic</th>"
        "<th>server</th><th>from</th><th>to</th></tr>"
    )
    body = []
    for r in rows:
        digest = r["digest"] or "-"
        accuracy = "-" if r["accuracy"] is None else f"{r['accuracy']:g}"
        traffic = "-" if r["traffic"] is None else f"{r['traffic']}%"
        server = r["server"] or "-"
        cells = [
            e(r["variant"] or "-"),
            e(r["model"]),
            e(r["version"] or "-"),
            f'<code title="{e(digest)}">{e(digest[:19])}</code>',
            e(accuracy),
            e(traffic),
            f'<code title="{e(server)}">{e(_short_image(r["server"]))}</code>',
            f"{_commit(r['fromCommit'])}<br>{e(r['from'])}",
            f"{_commit(r['toCommit'])}<br>{e(r['to'] or 'now')}",
        ]
        classes = ["", "", "", "", ' class="n"', ' class="n"', "", ' class="t"', ' class="t"']
        body.append("<tr>" + "".join(f"<td{c}>{v}</td>" for c, v in zip(classes, cells, strict=True)) + "</tr>")
    return f"<h3>Model lineage (whole history)</h3><table>{head}{''.join(body)}</table>"


def _environment(document: dict[str, Any], env: str) -> str:
    figures = document["environments"][env]["figures"]
    rows = [r for r in document["deployments"] if r["env"] == env]
    caught = set(figures["changeFailureRate"]["caughtByCanaryCommits"])
    failed = sum(1 for r in rows if r["failure"])
    timeline = charts.lineage_timeline(document, env)
    chart = f"<figure>{timeline}</figure>" if timeline else '<p class="muted">No release state in the window.</p>'
    return (
        f'<details id="env-{e(env)}"><summary>{e(env)}: {len(rows)} deployments, {failed} failed '
        f"({e(document['environments'][env]['strategy'])})</summary>{chart}"
        f"<h3>Deployments in the window</h3>{_deployments_table(rows, caught)}"
        f"{_lineage_table([r for r in document['lineage'] if r['env'] == env])}</details>"
    )


def html_bytes(document: dict[str, Any]) -> bytes:
    """index.html for an insights.json document."""
    window = document["window"]
    title = f"Release insights {window['since']} .. {window['until']}"
    sections = "".join(_environment(document, env) for env in document["environments"])
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>
{CSS}
</style>
</head>
<body>
<h1>{e(title)}</h1>
<p>From git alone at {_commit(document["head"])}: every deployment is a first-parent commit that changed an
environment's release state. Definitions: <code>{e(document["definitions"])}</code>. Figures below
{document["minSamples"]} samples say <em>not enough data</em>.</p>
<h2>Figures</h2>
{_figures_table(document)}
<h2>Deployments per week</h2>
<figure>{charts.deployments_per_week(document)}</figure>
<h2>Lead time over time</h2>
<figure>{charts.lead_time(document)}</figure>
<h2>Environments</h2>
<p class="muted">Each environment's model lineage over the window and its deployments, down to the commits.</p>
{sections}
</body>
</html>
"""
    return page.encode()
