"""Every YAML example in the repository's Markdown files is applied to the control plane.

Each ```yaml block is one of these, by its content (anything else fails, naming the block):

- a file of an overlay, named by its first line (``# overlays/prod/release.yaml``, or
  ``# overlays/prod/kustomization.yaml`` for a kustomization fragment): applied on top of that
  overlay, as a patch file or merged into the kustomization;
- chart values (a README under ``charts/<chart>/`` whose keys are the chart's values): the chart
  rendered with them;
- a ``platform.yaml`` fragment, named by its first line (``# platform.yaml``): merged into a
  scratch clone's ``platform.yaml``, synthesized with ``make synth``, and its dev overlay synced;
- a manifest (``apiVersion`` and ``kind``);
- an object's ``metadata`` alone: merged into every Deployment of the first overlay.

Each example is synced, Argo CD style, into a namespace of its own that enforces Pod Security
"restricted": it must be admitted, its pods too, the server must keep every field, and what the
example sets must be what the live objects say.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from compare import MISSING, ref, rewrites
from repository import Overlay, Repository, load_objects, make, scratch_clone

from generator.paths import REPO_ROOT
from generator.tools import helm_path, render_overlay
from generator.validate.model import fmt_path
from generator.validate.repofiles import tracked_files

FENCE = re.compile(r"^(?P<indent>[ \t]*)```ya?ml[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
PATH_COMMENT = re.compile(r"^#\s*(overlays/[\w.-]+/[\w.-]+\.ya?ml)\b")
PLATFORM_COMMENT = re.compile(r"^#\s*platform\.yaml\b")
PLATFORM_EXAMPLE_OVERLAY = "dev"


@dataclass(frozen=True)
class Example:
    file: str
    line: int
    text: str

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"

    def docs(self) -> list[dict]:
        return load_objects(self.text)


def readme_examples(root: Path) -> list[Example]:
    """Every ```yaml block of every tracked Markdown file, dedented."""
    found = []
    for rel in tracked_files(root):
        if not rel.endswith(".md"):
            continue
        text = (root / rel).read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Example(rel, line, textwrap.dedent(match["body"])))
    return found


EXAMPLES = readme_examples(REPO_ROOT)


def kustomize_name_matches(rendered: str, name: str) -> bool:
    """A generated ConfigMap is named ``<name>-<hash>`` once rendered."""
    return rendered == name or re.fullmatch(re.escape(name) + r"-[a-z0-9]{10}", rendered) is not None


def unmet(patch, live, path=()):
    """Where a live object does not say what a strategic-merge patch set: (path, patch, live).
    ``null`` means the field must be gone; lists of named entries merge by ``name``."""
    if isinstance(patch, dict):
        for key, value in patch.items():
            if key.startswith("$"):
                continue
            present = isinstance(live, dict) and key in live
            if value is None:
                if present:
                    yield (*path, key), None, live[key]
            elif not present:
                yield (*path, key), value, MISSING
            else:
                yield from unmet(value, live[key], (*path, key))
    elif isinstance(patch, list) and patch and all(isinstance(i, dict) and "name" in i for i in patch):
        by_name = {item.get("name"): item for item in live or [] if isinstance(item, dict)}
        for item in patch:
            if item["name"] in by_name:
                yield from unmet(item, by_name[item["name"]], (*path, item["name"]))
            else:
                yield (*path, item["name"]), item, MISSING
    elif patch != live:
        yield path, patch, live


@dataclass
class Case:
    """An example turned into objects to sync and the patches they must show."""

    objects: list[dict]
    patches: list[dict]  # objects (or fragments with kind/name) whose fields must hold live
    base: Overlay  # the overlay whose Application's namespace metadata the case uses


def chart_values_keys(readme: str) -> set[str] | None:
    parts = Path(readme).parts
    if len(parts) >= 3 and parts[0] == "charts" and (REPO_ROOT / parts[0] / parts[1] / "values.yaml").is_file():
        return set(yaml.safe_load((REPO_ROOT / parts[0] / parts[1] / "values.yaml").read_text()))
    return None


def merged(base: dict, fragment: dict) -> dict:
    """``base`` with ``fragment``'s mappings merged in, key by key (other values replace)."""
    out = dict(base)
    for key, value in fragment.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def build(example: Example, repository, workdir: Path, namespace: str) -> Case:
    docs = example.docs()
    first_overlay = repository.overlays[sorted(repository.overlays)[0]]
    if PLATFORM_COMMENT.match(example.text.lstrip()):
        clone = scratch_clone(repository.root, workdir / "repo")
        config = clone / "platform.yaml"
        config.write_text(yaml.safe_dump(merged(yaml.safe_load(config.read_text()), docs[0]), sort_keys=False))
        make(clone, "synth")
        overlay = Repository.load(clone, only=(PLATFORM_EXAMPLE_OVERLAY,)).overlays[PLATFORM_EXAMPLE_OVERLAY]
        return Case(overlay.moved_to(namespace).objects, [], repository.overlays[PLATFORM_EXAMPLE_OVERLAY])
    named = PATH_COMMENT.match(example.text.lstrip())
    if named:
        _, env, file = named[1].split("/")
        overlay = repository.overlays[env]
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": namespace,
            "resources": [os.path.relpath(repository.root / overlay.path, workdir)],
        }
        patches: list[dict] = []
        if file.startswith("kustomization."):
            fragment = docs[0]
            unknown = set(fragment) - {"patches"}
            assert not unknown, f"{example.id}: only patches: fragments are applied, not {sorted(unknown)}"
            kustomization["patches"] = fragment["patches"]
            patches = [p for entry in fragment["patches"] for p in load_objects(entry.get("patch", ""))]
        else:
            (workdir / file).write_text(example.text)
            kustomization["patches"] = [{"path": file}]
            patches = docs
        (workdir / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        return Case(load_objects(render_overlay(workdir)), patches, overlay)
    values_keys = chart_values_keys(example.file)
    if values_keys is not None and docs and set(docs[0]) <= values_keys:
        chart = Path(example.file).parent
        (workdir / "values.yaml").write_text(example.text)
        out = subprocess.run(
            [
                helm_path(),
                "template",
                "e2e",
                str(REPO_ROOT / chart),
                "--skip-tests",
                "-f",
                str(workdir / "values.yaml"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        objects = load_objects(out)
        for obj in objects:
            obj["metadata"]["namespace"] = namespace
        return Case(objects, [], first_overlay)
    if docs and all("apiVersion" in d and "kind" in d for d in docs):
        objects = copy.deepcopy(docs)
        for obj in objects:
            obj.setdefault("metadata", {})["namespace"] = namespace
        return Case(objects, docs, first_overlay)
    if len(docs) == 1 and set(docs[0]) == {"metadata"}:
        objects = copy.deepcopy(first_overlay.objects)
        patches = []
        for obj in objects:
            obj["metadata"]["namespace"] = namespace
            if obj["kind"] == "Deployment":
                for key, value in docs[0]["metadata"].items():
                    obj["metadata"].setdefault(key, {}).update(value)
                patches.append(
                    {"kind": "Deployment", "metadata": {"name": obj["metadata"]["name"], **docs[0]["metadata"]}}
                )
        return Case(objects, patches, first_overlay)
    raise AssertionError(
        f"{example.id}: a YAML example the e2e suite cannot apply: make it a manifest, chart values, "
        "a platform.yaml fragment (first line # platform.yaml) "
        "or a patch whose first line names its overlay file (# overlays/<env>/<file>.yaml)"
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_readme_example_is_admitted_and_holds(cluster, repository, example, tmp_path):
    namespace = f"e2e-readme-{EXAMPLES.index(example)}"
    case = build(example, repository, tmp_path, namespace)
    overlay = Overlay(f"readme-{example.id}", example.file, namespace, case.objects)
    base = case.base
    cluster.deploy(overlay, repository.application_for(base), repository.namespace_object(base), namespace)
    assert cluster.failed_creates(namespace) == []
    live = {ref(o): cluster.syncer.live(o) for o in case.objects}
    dropped = [
        f"{ref(o)}: {fmt_path(p)}: git {g!r}, server {v!r}"
        for o in case.objects
        for p, g, v in rewrites(o, live[ref(o)])
    ]
    assert not dropped, "fields the server dropped or rewrote:\n" + "\n".join(dropped)
    for patch in case.patches:
        targets = [
            o
            for o in case.objects
            if o["kind"] == patch["kind"] and kustomize_name_matches(o["metadata"]["name"], patch["metadata"]["name"])
        ]
        assert targets, f"{example.id}: {patch['kind']}/{patch['metadata']['name']} is not among the rendered objects"
        for target in targets:
            body = {**patch, "metadata": {k: v for k, v in patch["metadata"].items() if k != "name"}}  # matched above
            missed = [
                f"{fmt_path(p)}: example {want!r}, live {got!r}" for p, want, got in unmet(body, live[ref(target)])
            ]
            assert not missed, f"{example.id}: {ref(target)} does not hold the example:\n" + "\n".join(missed)
