"""The kubeconform cross-check: the same renders, checked by ``kubeconform -strict`` against
the same pinned schemas, its findings reported like every other check.

kubernetes-validate's strict schemas name themselves ``$id: https://kubernetes.io/api/...`` and
their definitions ``$ref: /api/_definitions.json#...``, which kubeconform cannot resolve from
disk. ``prepare_schemas`` writes copies that refer to the sibling file instead, once per package
version, into ``.cache/kubeconform/`` (atomically; deleting it is always safe). The converted CRD
schemas in ``crds/schemas/`` are self-contained and used as they are.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from generator.validate.model import Finding, fmt_path
from generator.validate.render import Rendered
from generator.validate.schemas import CRD_SCHEMA_DIR, WITHOUT_SCHEMA, k8s_schema_dir

K8S_TEMPLATE = "{{.ResourceKind}}{{.KindSuffix}}.json"
CRD_TEMPLATE = str(CRD_SCHEMA_DIR) + "/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"
DEFINITIONS_REF = "/api/_definitions.json"
# One leaf of kubeconform's message: "- at '/spec/replicas': got string, want null or integer".
_LEAF = re.compile(r"- at '([^']*)': (.*?)(?=\s+- at '|$)")


def _readable(node: Any) -> Any:
    """The schema with ``$id`` dropped and definition references made sibling-relative."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$id":
                continue
            if key == "$ref" and isinstance(value, str) and value.startswith(DEFINITIONS_REF):
                value = value[len("/api/") :]
            out[key] = _readable(value)
        return out
    if isinstance(node, list):
        return [_readable(item) for item in node]
    return node


def prepare_schemas(root: Path, kubernetes_version: str) -> Path:
    """A directory of kubeconform-readable copies of the pinned strict schemas for a version."""
    source = k8s_schema_dir(kubernetes_version)
    target = root / ".cache" / "kubeconform" / f"{source.name}-{package_version('kubernetes-validate')}"
    if (target / "_definitions.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for schema in source.glob("*.json"):
            (staging / schema.name).write_text(json.dumps(_readable(json.loads(schema.read_text()))))
        os.chmod(staging, 0o755)
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "_definitions.json").is_file():  # not a concurrent run that won the rename
            raise
    return target


def _findings(overlay: str, resource: dict) -> list[Finding]:
    kind, name = resource.get("kind", ""), resource.get("name", "")
    message = " ".join(str(resource.get("msg", "")).split())
    leaves = [(ptr, text) for ptr, text in _LEAF.findall(message) if text != "validation failed"]
    if not leaves:
        return [Finding(overlay, kind, name, "", message, "kubeconform")]
    return [
        Finding(overlay, kind, name, fmt_path(p for p in ptr.split("/") if p), text, "kubeconform")
        for ptr, text in leaves
    ]


def run(binary: str, rendered: list[Rendered], root: Path, kubernetes_version: str) -> list[Finding]:
    """kubeconform -strict over every rendered stream in one run; one finding per problem."""
    schemas = prepare_schemas(root, kubernetes_version)
    with tempfile.TemporaryDirectory(prefix="kubeconform-") as tmp:
        streams: dict[str, str] = {}
        for item in rendered:
            if item.text:
                path = Path(tmp) / f"{len(streams)}.yaml"
                path.write_text(item.text)
                streams[str(path)] = item.name
        if not streams:
            return []
        version = kubernetes_version if kubernetes_version.count(".") == 2 else f"{kubernetes_version}.0"
        proc = subprocess.run(
            [binary, "-strict", "-output", "json", "-n", str(os.cpu_count() or 1)]
            + ["-kubernetes-version", version.lstrip("v")]
            + ["-schema-location", f"{schemas}/{K8S_TEMPLATE}", "-schema-location", CRD_TEMPLATE]
            # The kinds no registry package has a schema for: validate's notes name each object.
            + ["-skip", ",".join(sorted(kind for _, kind in WITHOUT_SCHEMA))]
            + list(streams),
            capture_output=True,
            text=True,
        )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        detail = (proc.stderr or proc.stdout).strip()[-300:]
        raise RuntimeError(f"kubeconform failed (exit {proc.returncode}): {detail}") from None
    out: list[Finding] = []
    for resource in report.get("resources", []):
        if resource.get("status") in ("statusInvalid", "statusError"):
            out.extend(_findings(streams.get(resource.get("filename", ""), "?"), resource))
    return out
