"""The charts of the HTML report, drawn by matplotlib's SVG backend into inline ``<svg>`` elements.

Every chart is a function of insights.json alone and gives the same bytes for the same document:
a fixed hash salt per chart (its ids differ from the other charts' in the same page), no date in
the metadata (the ``<metadata>`` block is dropped altogether), text kept as ``<text>`` (the page's
fonts draw it; nothing is fetched). Times are UTC.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import matplotlib
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.typing import RcKeyType

from generator.insights.metrics import WEEK

#: One colour per environment (in platform.yaml order) and per model version (in sorted order).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
HOUR, DAY = 3600, 86400
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: The smallest share of the time axis a lineage bar is labelled in.
LABEL_SPAN = 0.07


def colour(index: int) -> str:
    """The palette's colour for the ``index``-th environment or version."""
    return PALETTE[index % len(PALETTE)]


def parse_iso(text: str) -> int:
    """``2026-12-01T12:00:00Z`` as Unix seconds."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _num(seconds: int) -> float:
    return float(mdates.date2num(datetime.fromtimestamp(seconds, UTC)))


@contextmanager
def _figure(name: str, width: float, height: float) -> Iterator[Figure]:
    """A figure drawn with the report's settings and a hash salt of its own (``name``)."""
    settings: dict[RcKeyType, Any] = {
        "svg.fonttype": "none",  # text stays text, drawn by the page's fonts
        "svg.hashsalt": f"insights-{name}",
        "font.family": "sans-serif",
        "font.size": 9,
        "timezone": "UTC",
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    with matplotlib.rc_context(settings):
        yield Figure(figsize=(width, height), layout="constrained")


def svg_text(figure: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog, no doctype, no metadata)."""
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    return _METADATA.sub("", text[text.index("<svg") :]).strip()


def _time_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def time_range(document: dict[str, Any]) -> tuple[int, int]:
    """The time axis of the lead time and lineage charts: the window, from the first release
    state's start when the history begins inside it."""
    since, until = (parse_iso(document["window"][k]) for k in ("since", "until"))
    first = min((parse_iso(row["from"]) for row in document["lineage"]), default=since)
    return min(max(since, first), until), until


def week_starts(since: int, until: int) -> list[int]:
    """The start of every week of the window, from its first second (the last may be partial)."""
    return list(range(since, max(until, since + 1), WEEK))


def deployments_per_week(document: dict[str, Any]) -> str:
    """Stacked bars: deployments per week of the window, one colour per environment."""
    since, until = (parse_iso(document["window"][k]) for k in ("since", "until"))
    starts = week_starts(since, until)
    envs = list(document["environments"])
    counts = {env: [0] * len(starts) for env in envs}
    for row in document["deployments"]:
        counts[row["env"]][min((parse_iso(row["time"]) - since) // WEEK, len(starts) - 1)] += 1
    with _figure("deployments", 9, 3.2) as fig:
        ax = fig.add_subplot()
        positions = list(range(len(starts)))
        bottom = [0] * len(starts)
        for i, env in enumerate(envs):
            ax.bar(positions, counts[env], bottom=bottom, color=colour(i), label=env, width=0.8)
            bottom = [b + c for b, c in zip(bottom, counts[env], strict=True)]
        step = max(1, -(-len(starts) // 8))
        labels = [datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%d") for s in starts]
        ax.set_xticks(positions[::step], labels[::step])
        ax.set_xlabel("week starting (UTC)")
        ax.set_ylabel("deployments")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        ax.set_title("Deployments per week")
        return svg_text(fig)


def lead_time(document: dict[str, Any]) -> str:
    """Points: each carried commit's lead time at the time of the deployment that carried it."""
    times = {(row["env"], row["commit"]): parse_iso(row["time"]) for row in document["deployments"]}
    since, until = time_range(document)
    samples = {
        env: [
            (times[(env, v["deployment"])], v["seconds"])
            for v in scope["figures"]["leadTime"]["values"]
            if (env, v["deployment"]) in times
        ]
        for env, scope in document["environments"].items()
    }
    longest = max((s for points in samples.values() for _, s in points), default=0)
    unit, size = ("days", DAY) if longest > 3 * DAY else ("hours", HOUR)
    with _figure("lead-time", 9, 3.2) as fig:
        ax = fig.add_subplot()
        for i, (env, points) in enumerate(samples.items()):
            ordered = sorted(points)
            ax.scatter(
                [_num(t) for t, _ in ordered],
                [s / size for _, s in ordered],
                color=colour(i),
                marker=MARKERS[i % len(MARKERS)],
                alpha=0.7,
                label=env,
                s=20,
            )
        ax.set_xlim(_num(since), _num(until))
        ax.set_ylim(bottom=0)
        _time_axis(ax)
        ax.set_ylabel(f"lead time ({unit})")
        ax.set_xlabel("deployment time (UTC)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        ax.set_title("Lead time for changes (each commit, at the deployment that carried it)")
        return svg_text(fig)


def lineage_timeline(document: dict[str, Any], env: str) -> str | None:
    """Bars: what each variant of ``env`` ran over the window, one row per variant and model,
    coloured by model version and labelled with the version and its share of traffic (where the
    bar is wide enough); None when nothing ran in the window."""
    since, until = time_range(document)
    rows = []
    for row in document["lineage"]:
        start = parse_iso(row["from"])
        end = parse_iso(row["to"]) if row["to"] is not None else until
        if row["env"] == env and start <= until and end >= since:
            rows.append((row, max(start, since), min(end, until)))
    if not rows:
        return None
    lanes = sorted({(r["variant"], r["model"]) for r, _, _ in rows})
    versions = sorted({r["version"] or "-" for r, _, _ in rows})
    with _figure(f"lineage-{env}", 9, 0.9 + 0.45 * len(lanes)) as fig:
        ax = fig.add_subplot()
        for row, start, end in rows:
            lane = lanes.index((row["variant"], row["model"]))
            version = row["version"] or "-"
            share = row["traffic"]
            left, width = _num(start), max(_num(end) - _num(start), 1e-6)
            ax.barh(
                lane,
                width,
                left=left,
                height=0.6,
                color=colour(versions.index(version)),
                alpha=0.35 if share == 0 else 0.9,
                edgecolor="white",
            )
            if width < LABEL_SPAN * (_num(until) - _num(since)):
                continue
            label = f"v{version}" + ("" if share is None else f" {share}%")
            ax.text(left + width / 2, lane, label, ha="center", va="center", fontsize=8, clip_on=True)
        ax.set_yticks(range(len(lanes)), [" ".join(filter(None, lane)) for lane in lanes])
        ax.set_ylim(-0.6, len(lanes) - 0.4)
        ax.invert_yaxis()
        ax.set_xlim(_num(since), _num(until))
        _time_axis(ax)
        ax.set_title(f"{env}: model version per variant (share of traffic; pale: no traffic)")
        return svg_text(fig)
