"""Model lineage: which model version, digest, card accuracy and images each environment (each
slot or track) ran, from which commit to which, and with what share of production traffic.

A row lasts while all of those stay the same; a deployment that changes any of them for a
variant ends that variant's row and starts the next (a blue-green switch ends both slots' rows:
their traffic changed). A row still open has no end commit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from generator.insights.history import History


@dataclass(frozen=True)
class LineageRow:
    """One stretch of time in which one variant of one environment ran one thing."""

    env: str
    variant: str
    model: str
    version: str | None
    digest: str | None
    accuracy: float | None
    model_image: str | None
    server: str | None
    traffic: int | None  # percent of production traffic (None: the files do not say)
    from_commit: str
    from_time: int
    to_commit: str | None
    to_time: int | None

    def live_at(self, time: int) -> bool:
        """Whether the row was in force at ``time``."""
        return self.from_time <= time and (self.to_time is None or time < self.to_time)

    def as_json(self) -> dict[str, object]:
        """The row with camelCase keys and ISO times (insights.json)."""
        data = asdict(self)
        return {
            "env": data["env"],
            "variant": data["variant"],
            "model": data["model"],
            "version": data["version"],
            "digest": data["digest"],
            "accuracy": data["accuracy"],
            "modelImage": data["model_image"],
            "server": data["server"],
            "traffic": data["traffic"],
            "fromCommit": data["from_commit"],
            "from": iso(self.from_time),
            "toCommit": data["to_commit"],
            "to": iso(self.to_time) if self.to_time is not None else None,
        }


def iso(time: int) -> str:
    """A Unix time as ``2026-12-01T12:00:00Z``."""
    return datetime.fromtimestamp(time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lineage(history: History, env: str | None = None) -> list[LineageRow]:
    """Every lineage row of ``env`` (None: every environment), in environment, variant, model and
    time order."""
    rows: list[LineageRow] = []
    for name, deployments in history.deployments.items():
        if env is not None and name != env:
            continue
        open_rows: dict[tuple[str, str], LineageRow] = {}
        done: list[LineageRow] = []
        for d in deployments:
            for variant in d.after.variants:
                for pin in variant.models:
                    accuracy = history.card_accuracy(pin.model, pin.version, pin.digest or "") if pin.version else None
                    row = LineageRow(
                        name,
                        variant.variant,
                        pin.model,
                        pin.version,
                        pin.digest,
                        accuracy,
                        pin.image_digest,
                        variant.server,
                        d.after.share(variant.variant),
                        d.commit.sha,
                        d.time,
                        None,
                        None,
                    )
                    key = (variant.variant, pin.model)
                    current = open_rows.get(key)
                    if current is not None and _same(current, row):
                        continue
                    if current is not None:
                        done.append(_closed(current, d.commit.sha, d.time))
                    open_rows[key] = row
        rows.extend(sorted([*done, *open_rows.values()], key=lambda r: (r.variant, r.model, r.from_time)))
    return rows


def _same(a: LineageRow, b: LineageRow) -> bool:
    return (a.version, a.digest, a.model_image, a.server, a.traffic) == (
        b.version,
        b.digest,
        b.model_image,
        b.server,
        b.traffic,
    )


def _closed(row: LineageRow, commit: str, time: int) -> LineageRow:
    data = asdict(row)
    data.update(to_commit=commit, to_time=time)
    return LineageRow(**data)


def select(rows: list[LineageRow], at: int | None = None, digest: str | None = None) -> list[LineageRow]:
    """The rows in force at ``at``, and (``digest``) those where that model or model image digest
    was live: taking production traffic."""
    if at is not None:
        rows = [r for r in rows if r.live_at(at)]
    if digest is not None:
        rows = [r for r in rows if digest in (r.digest, r.model_image) and (r.traffic or 0) > 0]
    return rows
