"""The Prometheus HTTP API, instant queries only: a vector of (labels, value), or a one-line
error (exit 3) when Prometheus is unreachable or answers something that is not its API."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from generator.release.errors import ToolFailed

Sample = tuple[dict[str, str], float]


class PrometheusError(ToolFailed):
    """Prometheus could not be asked, or answered something unusable (exit 3, nothing written)."""


@dataclass(frozen=True)
class Prometheus:
    """A Prometheus server's base URL (``http://host:9090``, or behind a path prefix)."""

    url: str
    timeout: float = 10.0

    def _get(self, path: str, params: dict[str, str]) -> object:
        url = f"{self.url.rstrip('/')}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as answer:
                body = answer.read()
        except urllib.error.HTTPError as exc:  # Prometheus answers 400/422/503 with a JSON error
            body = exc.read()
            if not body.lstrip().startswith(b"{"):
                raise PrometheusError(f"Prometheus at {self.url} answered HTTP {exc.code} for {path}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PrometheusError(f"Prometheus at {self.url} is unreachable: {reason}") from exc
        try:
            data = json.loads(body)
        except ValueError as exc:
            shown = body[:40].decode(errors="replace").strip()
            raise PrometheusError(f"Prometheus at {self.url} answered something other than JSON: {shown!r}...") from exc
        if not isinstance(data, dict) or data.get("status") != "success":
            error = data.get("error", data) if isinstance(data, dict) else data
            raise PrometheusError(f"Prometheus at {self.url} refused {params.get('query', path)!r}: {error}")
        return data.get("data")

    def check(self) -> str:
        """Prometheus's version: proves it answers its API before anything is evaluated."""
        info = self._get("status/buildinfo", {})
        if not isinstance(info, dict) or "version" not in info:
            raise PrometheusError(f"Prometheus at {self.url} answered build info without a version: {info!r}")
        return str(info["version"])

    def vector(self, query: str, at: float | None = None) -> list[Sample]:
        """An instant query's samples, as (labels, value); NaN values are dropped (no data)."""
        params = {"query": query, **({"time": f"{at:.3f}"} if at is not None else {})}
        data = self._get("query", params)
        if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
            raise PrometheusError(f"Prometheus at {self.url} answered {query!r} with no instant vector: {data!r}")
        samples = []
        for item in data["result"]:
            try:
                labels, value = dict(item["metric"]), float(item["value"][1])
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise PrometheusError(
                    f"Prometheus at {self.url} answered {query!r} with a bad sample: {item!r}"
                ) from exc
            if not math.isnan(value):
                samples.append((labels, value))
        return samples

    def scalar_sum(self, query: str, at: float | None = None) -> float:
        """The sum of a query's samples (0 when it has none: no series, no requests)."""
        return sum(value for _, value in self.vector(query, at))
