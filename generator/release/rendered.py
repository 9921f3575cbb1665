"""Questions answered from rendered manifests (``kustomize build`` output), not from overlay text:
which pods a Service selects, what image and model version a Deployment runs, where traffic goes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from generator.release import overlay as overlay_module
from generator.release.errors import ToolFailed
from generator.tools import ToolError, render_overlay
from generator.validate.kube import map_selector_matches, selector_matches

RELEASE_KEY = "MODEL_VERSION"
#: Kustomize's name-suffix hash of a generated ConfigMap or Secret: 10 characters of this alphabet.
HASH_SUFFIX = re.compile(r"-[2456789bcdfghkmt]{10}$")


#: overlays/ directories every environment overlay may read: the generated base and components.
GENERATED_DIRS = ("base", "components")
#: inputs digest -> rendered objects. Content-addressed, so safe for the life of a process; the
#: objects are shared and must not be mutated.
_CACHE: dict[str, list[dict]] = {}


_REFERENCE = re.compile(r"(?:^|[\s'\"])(\.\./[^\s'\"]*)")


def inputs_digest(overlays_dir: Path, name: str) -> str | None:
    """A digest of every file a render of ``overlays/<name>`` can read: its own directory, the
    generated base and components, and any sibling directory its files name as ``../<dir>``.
    None (always render) when a file points outside ``overlays/``."""
    dirs = {name, *GENERATED_DIRS}
    own = sorted(p for p in (overlays_dir / name).rglob("*") if p.is_file())
    for path in own:
        for ref in _REFERENCE.findall(path.read_text(errors="replace")):
            parts = Path(ref).parts
            if len(parts) < 2 or parts[1] == "..":
                return None
            dirs.add(parts[1])
    digest = hashlib.sha256()
    for d in sorted(dirs):
        for path in sorted(p for p in (overlays_dir / d).rglob("*") if p.is_file()):
            digest.update(path.relative_to(overlays_dir).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def render_docs(path: Path) -> list[dict]:
    """kustomize build a directory into a list of objects; ToolFailed when it does not build.
    An environment overlay whose inputs were rendered before in this process is not rendered again."""
    key = None
    if path.parent.name == "overlays" and overlay_module.render is render_overlay:
        key = inputs_digest(path.parent, path.name)
        if key is not None and key in _CACHE:
            return _CACHE[key]
    try:
        text = overlay_module.render(path)
    except ToolError as exc:
        raise ToolFailed(str(exc)) from exc
    docs = parse_docs(text)
    if key is not None:
        _CACHE[key] = docs
    return docs


def parse_docs(text: str) -> list[dict]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(text, Loader=loader) if isinstance(d, dict)]


def label_selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """A Kubernetes label selector (``matchLabels``/``matchExpressions``, or a Service's plain map)."""
    if not selector:
        return False  # an empty Service selector selects nothing it manages; treat as no match
    if "matchLabels" in selector or "matchExpressions" in selector:
        return selector_matches(selector, labels or {})
    return map_selector_matches(selector, labels or {})


@dataclass
class Manifests:
    docs: list[dict]

    def of_kind(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d.get("kind") == kind]

    def get(self, kind: str, name: str) -> dict | None:
        return next((d for d in self.of_kind(kind) if d["metadata"]["name"] == name), None)

    def pod_labels(self, workload: dict) -> dict:
        return ((workload.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}

    def selected_workloads(self, service: dict) -> list[dict]:
        selector = (service.get("spec") or {}).get("selector")
        return [d for d in self.of_kind("Deployment") if label_selector_matches(selector, self.pod_labels(d))]

    def container(self, workload: dict, name: str) -> dict:
        containers = workload["spec"]["template"]["spec"]["containers"]
        return next((c for c in containers if c.get("name") == name), containers[0])

    def env_value(self, container: dict, key: str) -> str:
        for var in container.get("env") or []:
            if var.get("name") != key:
                continue
            if "value" in var:
                return str(var["value"])
            ref = (var.get("valueFrom") or {}).get("configMapKeyRef")
            if ref:
                cm = self.get("ConfigMap", ref["name"]) or {}
                return str((cm.get("data") or {}).get(ref["key"], "?"))
        return "?"

    def server_deployments(self, model: str) -> list[dict]:
        return [
            d
            for d in self.of_kind("Deployment")
            if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "server"
            and (d["metadata"].get("labels") or {}).get("app.kubernetes.io/instance") == model
        ]

    def hpa_for(self, workload: dict) -> dict | None:
        return next(
            (
                h
                for h in self.of_kind("HorizontalPodAutoscaler")
                if h["spec"]["scaleTargetRef"].get("kind") == workload["kind"]
                and h["spec"]["scaleTargetRef"]["name"] == workload["metadata"]["name"]
            ),
            None,
        )

    def route_weights(self, route_name: str) -> dict[str, int]:
        """Deployment name -> weight of the weighted rule of an HTTPRoute (the one whose backends
        carry weights: the generated route's predict rule; a header rule of older routes has none)."""
        route = self.get("HTTPRoute", route_name)
        if not route:
            return {}
        weights: dict[str, int] = {}
        for rule in route["spec"].get("rules") or []:
            if not any("weight" in ref for ref in rule.get("backendRefs") or []):
                continue
            for ref in rule.get("backendRefs") or []:
                service = self.get("Service", ref["name"])
                for workload in self.selected_workloads(service) if service else []:
                    weights[workload["metadata"]["name"]] = weights.get(workload["metadata"]["name"], 0) + int(
                        ref.get("weight", 1)
                    )
        return weights


def short_image(image: str) -> str:
    """``registry/ml/inference-server:0.1.0`` -> ``inference-server:0.1.0`` (digests cut to 12 hex)."""
    name = image.rsplit("/", 1)[-1]
    if "@sha256:" in name:
        repo, digest = name.split("@", 1)
        return f"{repo}@{digest[:19]}"
    return name
