"""Helpers for the validation suites: load fixtures, mutate rendered objects by field path,
run the in-process checks, and match findings against "check Kind/name path" expectations."""

from __future__ import annotations

import copy
import re
import textwrap
from pathlib import Path

import yaml

from generator.validate import engine
from generator.validate.model import Resource
from generator.validate.policies import Environment
from generator.validate.render import parse_rendered
from generator.validate.schemas import SchemaStore

FIXTURES = Path(__file__).resolve().parent / "fixtures"
_STORE: SchemaStore | None = None


def store() -> SchemaStore:
    global _STORE
    if _STORE is None:
        _STORE = SchemaStore("1.33")
    return _STORE


def clean_docs() -> list[dict]:
    resources, findings = parse_rendered("fixture", (FIXTURES / "clean.yaml").read_text(), "fixture")
    assert not findings
    return [r.doc for r in resources]


def split_path(path: str) -> list:
    """``spec.containers[0].image`` -> ["spec", "containers", 0, "image"]; keys may hold dots
    only inside [...] (annotation keys), e.g. ``metadata.annotations[a.b/c]``."""
    parts: list = []
    for token in re.finditer(r"([^.\[\]]+)|\[([^\]]+)\]", path):
        if token[1] is not None:
            parts.append(token[1])
        else:
            parts.append(int(token[2]) if token[2].isdigit() else token[2])
    return parts


def _find(docs: list[dict], ref: str) -> dict:
    kind, name = ref.split("/", 1)
    for doc in docs:
        if doc.get("kind") == kind and doc.get("metadata", {}).get("name") == name:
            return doc
    raise KeyError(ref)


def set_path(doc, parts: list, value) -> None:
    for index, part in enumerate(parts[:-1]):
        nxt = parts[index + 1]
        if isinstance(doc, list):
            while len(doc) <= part:
                doc.append({})
            doc = doc[part]
        else:
            doc = doc.setdefault(part, [] if isinstance(nxt, int) else {})
    last = parts[-1]
    if isinstance(doc, list):
        while len(doc) <= last:
            doc.append(None)
    doc[last] = copy.deepcopy(value)


def delete_path(doc, parts: list) -> None:
    for part in parts[:-1]:
        doc = doc[part]
    del doc[parts[-1]]


def mutate(docs: list[dict], case: dict) -> list[dict]:
    docs = copy.deepcopy(docs)
    for ref in case.get("remove", []):
        docs.remove(_find(docs, ref))
    for ref, paths in (case.get("delete") or {}).items():
        for path in paths:
            delete_path(_find(docs, ref), split_path(path))
    for ref, values in (case.get("set") or {}).items():
        target = _find(docs, ref)
        for path, value in values.items():
            set_path(target, split_path(path), value)
    docs.extend(copy.deepcopy(case.get("add", [])))
    return docs


def check_docs(docs: list[dict], env: Environment | None = None):
    resources = [Resource(doc, "fixture") for doc in docs]
    findings = engine.check_overlay(store(), resources, env)
    kept, _ = engine.apply_exemptions(findings, resources)
    return kept


def parse_expectation(text: str) -> tuple[str, str, str]:
    check, resource, path = (text.split(" ", 2) + ["", ""])[:3]
    return check, resource, "" if path == '""' else path


def has_finding(findings, check: str, resource: str, path: str | None = None) -> bool:
    return any(f.check == check and f.resource == resource and (path is None or f.path == path) for f in findings)


def load_cases() -> list[tuple[str, dict]]:
    cases = []
    for path in sorted((FIXTURES / "checks").glob("*.yaml")):
        for case in yaml.safe_load(path.read_text()):
            cases.append((f"{path.stem}: {case['name']}", case))
    return cases


# --- a small repository built in a temp dir (engine and mutation tests) -----------------------

REPO = "https://git.example.com/ml/fixture.git"


def _dump(docs) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def build_repo(root: Path, envs=("dev",)) -> Path:
    """A minimal GitOps repo: overlays/base (clean.yaml without namespaces), one overlay per
    environment, argocd/ with an AppProject and one Application each, and platform.yaml."""
    docs = clean_docs()
    for doc in docs:
        doc["metadata"].pop("namespace", None)
    (root / "overlays" / "base").mkdir(parents=True)
    (root / "overlays" / "base" / "app.yaml").write_text(_dump(docs))
    (root / "overlays" / "base" / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- app.yaml\n"
    )
    (root / "argocd").mkdir()
    project = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "ml", "namespace": "argocd"},
        "spec": {
            "sourceRepos": [REPO],
            "destinations": [{"server": "https://kubernetes.default.svc", "namespace": f"ml-{e}"} for e in envs],
            "namespaceResourceWhitelist": sorted(
                ({"group": d["apiVersion"].rpartition("/")[0], "kind": d["kind"]} for d in docs),
                key=lambda x: (x["group"], x["kind"]),
            ),
        },
    }
    (root / "argocd" / "appproject.yaml").write_text(_dump([project]))
    platform = {"environments": []}
    for env in envs:
        overlay = root / "overlays" / env
        overlay.mkdir()
        (overlay / "kustomization.yaml").write_text(
            textwrap.dedent(f"""\
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            namespace: ml-{env}
            resources:
            - ../base
            """)
        )
        app = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": f"app-{env}", "namespace": "argocd"},
            "spec": {
                "project": "ml",
                "source": {"repoURL": REPO, "targetRevision": "main", "path": f"overlays/{env}"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": f"ml-{env}"},
                "syncPolicy": {"syncOptions": ["RespectIgnoreDifferences=true"]},
                "ignoreDifferences": [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}],
            },
        }
        (root / "argocd" / f"application-{env}.yaml").write_text(_dump([app]))
        platform["environments"].append({"name": env, "namespace": f"ml-{env}", "overlay": f"overlays/{env}"})
    (root / "platform.yaml").write_text(yaml.safe_dump(platform))
    return root


def add_patch(overlay: Path, target: str, ops: list[dict]) -> None:
    """Append a JSON-6902 patch on Kind/name to an overlay's kustomization."""
    path = overlay / "kustomization.yaml"
    data = yaml.safe_load(path.read_text())
    kind, name = target.split("/")
    data.setdefault("patches", []).append({"target": {"kind": kind, "name": name}, "patch": yaml.safe_dump(ops)})
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def run(root: Path, **kw) -> engine.Result:
    kw.setdefault("freshness", False)
    kw.setdefault("secrets", False)
    kw.setdefault("kubeconform", "off")
    return engine.run(engine.Options(root=root, **kw))


def lines(result) -> list[str]:
    return [f.render() for f in result.findings]


CON = "/spec/template/spec/containers/0"
