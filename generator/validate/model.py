"""The two value types every check shares: a rendered Resource and a Finding about it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_$-]+$")


def fmt_path(parts: Iterable[object]) -> str:
    """Render a JSON path as ``spec.containers[0].image``; keys that are not plain words (label
    and annotation keys) go in brackets: ``metadata.labels[app.kubernetes.io/name]``."""
    out = ""
    for part in parts:
        if isinstance(part, int) or not _PLAIN_KEY.match(str(part)):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out


@dataclass(frozen=True, order=True)
class Finding:
    """One problem: where it is (overlay or file, resource, field) and which check found it."""

    overlay: str
    kind: str
    name: str
    path: str
    message: str
    check: str
    line: int | None = field(default=None, compare=False)

    @property
    def resource(self) -> str:
        return f"{self.kind}/{self.name}" if self.kind else ""

    def render(self) -> str:
        where = self.overlay + (f":{self.line}" if self.line and not self.kind else "")
        parts = [where]
        if self.resource:
            parts.append(self.resource)
        if self.path:
            parts.append(self.path)
        return f"{': '.join(parts)}: {self.message} [{self.check}]"

    def as_dict(self) -> dict:
        data = asdict(self)
        data["resource"] = self.resource
        return data


@dataclass
class Resource:
    """One rendered Kubernetes object and where it came from."""

    doc: dict
    overlay: str  # overlay name ("dev", "argocd", ...) or a file path
    line: int | None = None  # first line of the document in the rendered stream or file

    @property
    def api_version(self) -> str:
        value = self.doc.get("apiVersion")
        return value if isinstance(value, str) else ""

    @property
    def kind(self) -> str:
        value = self.doc.get("kind")
        return value if isinstance(value, str) else ""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def metadata(self) -> dict:
        meta = self.doc.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        name = self.metadata.get("name")
        return name if isinstance(name, str) else "<unnamed>"

    @property
    def namespace(self) -> str:
        ns = self.metadata.get("namespace")
        return ns if isinstance(ns, str) else ""

    @property
    def annotations(self) -> dict:
        ann = self.metadata.get("annotations")
        return ann if isinstance(ann, dict) else {}

    @property
    def spec(self) -> dict:
        spec = self.doc.get("spec")
        return spec if isinstance(spec, dict) else {}

    def finding(self, path: str | Iterable[object], message: str, check: str) -> Finding:
        path = path if isinstance(path, str) else fmt_path(path)
        return Finding(self.overlay, self.kind or "<no kind>", self.name, path, message, check, self.line)
