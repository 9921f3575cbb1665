"""``make diff [BASE=origin/main] [MARKDOWN=1]``: what a change does to the rendered manifests.

Every environment overlay (``overlays/*/kustomization.yaml`` except ``base``, ``components``
and the previews' two: ``generator.paths.NOT_ENVIRONMENTS``) is rendered twice with kustomize:
as it is at BASE (exported with ``git archive`` into a temporary directory; the repository's git
state is not touched) and as it is in the working tree. Resources are matched by (kind,
namespace, name); a generated ConfigMap or Secret is matched by its name without kustomize's
10-character hash suffix, and references to it are compared without the suffix too, so a new
model version shows as one ``data.MODEL_VERSION`` change instead of a removed and an added
ConfigMap. Lists of named items (containers, env, ports, backendRefs) are matched by name
(``containers[name=server]``), other lists by index.

The output lists added (+), removed (-) and changed (~) resources with every changed field as
a dotted path, and flags (!) the risky ones:

=================  ================================================================
image              a container image changes (a rollout)
replicas           Deployment replicas, HPA min/max
selector           a workload, PDB or NetworkPolicy selector (workload selectors are
                   immutable: the apply fails)
Service switch     a Service selector changes: production traffic moves (blue-green)
weight / routing   HTTPRoute or GRPCRoute weights or rules change: traffic moves (canary)
model version      ``MODEL_VERSION`` in a release ConfigMap
removed <Kind>     a PodDisruptionBudget, NetworkPolicy, Service, Deployment or
                   PersistentVolumeClaim disappears
=================  ================================================================

``--markdown`` prints a PR comment (a table of the risky changes, then each overlay's changes in
a collapsible section). Exit codes: 0 the report was printed, changes or not (it is a report);
2 BASE is not a revision; 3 an overlay of the working tree does not build (the report is still
printed, with the error).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.paths import NOT_ENVIRONMENTS
from generator.release import cli, git
from generator.release.errors import EXIT_OK, EXIT_TOOL, ToolFailed
from generator.release.overlay import resolve_root
from generator.release.rendered import HASH_SUFFIX, inputs_digest, render_docs

GENERATED_KINDS = ("ConfigMap", "Secret")
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}
RISKY_REMOVALS = {"PodDisruptionBudget", "NetworkPolicy", "Service", "Deployment", "PersistentVolumeClaim"}
MISSING = object()
#: Longest Markdown report; a GitHub comment may hold 65536 characters.
MARKDOWN_LIMIT = 60000


@dataclass
class FieldChange:
    path: str
    before: Any
    after: Any
    risk: str = ""


@dataclass
class ResourceChange:
    op: str  # "+", "-", "~"
    kind: str
    namespace: str
    name: str
    fields: list[FieldChange] = field(default_factory=list)
    risk: str = ""  # for added/removed resources

    @property
    def title(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    @property
    def risks(self) -> list[str]:
        return ([self.risk] if self.risk else []) + [f.risk for f in self.fields if f.risk]


@dataclass
class OverlayDiff:
    name: str
    changes: list[ResourceChange] = field(default_factory=list)
    note: str = ""  # "new overlay", "removed overlay", "does not build at base: ..."
    error: str = ""  # the working tree does not build


# --- normalising and comparing ----------------------------------------------------------------


def discover(overlays_dir: Path) -> list[str]:
    if not overlays_dir.is_dir():
        return []
    return sorted(
        p.parent.name for p in overlays_dir.glob("*/kustomization.yaml") if p.parent.name not in NOT_ENVIRONMENTS
    )


def index(docs: list[dict]) -> dict[tuple[str, str, str], dict]:
    """(kind, namespace, name) -> object, generated names without their hash suffix, and every
    string equal to a hashed name replaced by the unhashed one."""
    renames = {}
    for doc in docs:
        name = (doc.get("metadata") or {}).get("name", "")
        if doc.get("kind") in GENERATED_KINDS and HASH_SUFFIX.search(name):
            renames[name] = HASH_SUFFIX.sub("", name)

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        if isinstance(value, str):
            return renames.get(value, value)
        return value

    out = {}
    for doc in docs:
        doc = strip(doc) if renames else doc
        meta = doc.get("metadata") or {}
        out[(doc.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))] = doc
    return out


def _key_path(path: str, key: str) -> str:
    part = key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)
    if not path:
        return part
    return f"{path}.{part}" if not part.startswith('"') else f"{path}[{part}]"


def _named(items: list) -> dict | None:
    if items and all(isinstance(i, dict) and "name" in i for i in items):
        names = [i["name"] for i in items]
        if len(set(names)) == len(names):
            return {i["name"]: i for i in items}
    return None


def compare(before: Any, after: Any, path: str = "") -> list[FieldChange]:
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in list(before) + [k for k in after if k not in before]:
            out += compare(before.get(key, MISSING), after.get(key, MISSING), _key_path(path, str(key)))
        return out
    if isinstance(before, list) and isinstance(after, list):
        named_before, named_after = _named(before), _named(after)
        out = []
        if named_before is not None and named_after is not None:
            for name in list(named_before) + [n for n in named_after if n not in named_before]:
                out += compare(named_before.get(name, MISSING), named_after.get(name, MISSING), f"{path}[name={name}]")
            return out
        for i in range(max(len(before), len(after))):
            out += compare(
                before[i] if i < len(before) else MISSING, after[i] if i < len(after) else MISSING, f"{path}[{i}]"
            )
        return out
    if before is MISSING and after is MISSING:
        return []
    if before != after or type(before) is not type(after):
        return [FieldChange(path, before, after)]
    return []


def classify(kind: str, path: str) -> str:
    """The risk a changed field carries, or ''."""
    if path.endswith(".image") and "containers[" in path:
        return "image"
    # The model a server pulls: an image volume's reference, or the fetch-model init container's.
    if path.endswith(".image.reference") or (path.endswith(".value") and "[name=MODEL_IMAGE]" in path):
        return "model image"
    if kind in WORKLOAD_KINDS:
        if path == "spec.replicas":
            return "replicas"
        if path.startswith("spec.selector"):
            return "selector"
    if kind == "HorizontalPodAutoscaler" and path in ("spec.minReplicas", "spec.maxReplicas"):
        return "replicas"
    if kind == "Service" and path.startswith("spec.selector"):
        return "Service switch"
    if kind in ("HTTPRoute", "GRPCRoute") and path.startswith("spec.rules"):
        return "weight" if path.endswith(".weight") else "routing"
    if kind in ("PodDisruptionBudget", "NetworkPolicy") and (
        path.startswith("spec.selector") or path.startswith("spec.podSelector")
    ):
        return "selector"
    if kind == "ConfigMap" and path == "data.MODEL_VERSION":
        return "model version"
    return ""


def diff_overlay(name: str, base_docs: list[dict] | None, work_docs: list[dict] | None) -> OverlayDiff:
    result = OverlayDiff(name)
    before, after = index(base_docs or []), index(work_docs or [])
    for key in sorted(set(before) | set(after)):
        kind, namespace, obj_name = key
        if key not in before:
            result.changes.append(ResourceChange("+", kind, namespace, obj_name))
        elif key not in after:
            risk = f"removed {kind}" if kind in RISKY_REMOVALS else ""
            result.changes.append(ResourceChange("-", kind, namespace, obj_name, risk=risk))
        else:
            fields = compare(before[key], after[key])
            if fields:
                for f in fields:
                    f.risk = classify(kind, f.path)
                result.changes.append(ResourceChange("~", kind, namespace, obj_name, fields))
    return result


# --- rendering both sides ----------------------------------------------------------------------


def _render(directory: Path) -> tuple[list[dict] | None, str]:
    try:
        return render_docs(directory), ""
    except ToolFailed as exc:
        return None, str(exc).strip().splitlines()[-1] if str(exc).strip() else "kustomize build failed"


def run_diff(root: Path, base: str) -> tuple[str, list[OverlayDiff]]:
    commit = git.resolve_revision(root, base)
    with tempfile.TemporaryDirectory(prefix="diff-base-") as tmp:
        git.export_tree(root, commit, ("overlays",), Path(tmp))
        base_names = discover(Path(tmp) / "overlays")
        work_names = discover(root / "overlays")
        names = sorted(set(base_names) | set(work_names))
        jobs = [
            (
                n,
                Path(tmp) / "overlays" / n if n in base_names else None,
                root / "overlays" / n if n in work_names else None,
            )
            for n in names
        ]

        def both(job: tuple[str, Path | None, Path | None]) -> tuple[str, tuple, tuple]:
            name, base_dir, work_dir = job
            work = _render(work_dir) if work_dir else (None, "")
            if base_dir and work_dir:
                key = inputs_digest(Path(tmp) / "overlays", name)
                if key is not None and key == inputs_digest(root / "overlays", name):
                    return name, work, work  # the same inputs render the same objects
            return name, _render(base_dir) if base_dir else (None, ""), work

        with ThreadPoolExecutor(max_workers=4) as pool:
            rendered = list(pool.map(both, jobs))
    diffs = []
    for name, (base_docs, base_err), (work_docs, work_err) in rendered:
        d = diff_overlay(name, base_docs, work_docs)
        if name not in base_names:
            d.note = "new overlay"
        elif name not in work_names:
            d.note = "overlay removed"
        elif base_err:
            d.note = f"does not build at base ({base_err}); every resource shows as added"
        if work_err:
            d.error = work_err
            d.changes = []
        diffs.append(d)
    return commit, diffs


# --- output ----------------------------------------------------------------------------------


def fmt(value: Any, limit: int = 100) -> str:
    if value is MISSING:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_report(base: str, commit: str, diffs: list[OverlayDiff]) -> str:
    changed = [d for d in diffs if d.changes or d.error or d.note]
    risky = sum(len(c.risks) for d in diffs for c in d.changes)
    lines = [
        f"diff: working tree against {base} ({commit[:12]}): {len(changed)} of {len(diffs)} overlay(s) "
        f"changed, {risky} risky change(s)"
    ]
    for d in changed:
        lines.append("")
        lines.append(f"{d.name} (overlays/{d.name})" + (f": {d.note}" if d.note else ""))
        if d.error:
            lines.append(f"  ERROR: the working tree does not build: {d.error}")
        for c in d.changes:
            flag = f"   [! {c.risk}]" if c.risk else ""
            lines.append(f"  {c.op} {c.title}{flag}")
            for f in c.fields:
                mark = "!" if f.risk else " "
                tail = f"   [! {f.risk}]" if f.risk else ""
                lines.append(f"    {mark} {f.path}: {fmt(f.before)} -> {fmt(f.after)}{tail}")
    unchanged = [d.name for d in diffs if d not in changed]
    if unchanged:
        lines.append("")
        lines.append(f"unchanged: {', '.join(unchanged)}")
    return "\n".join(lines)


def _md(value: str) -> str:
    return "`" + value.replace("`", "'").replace("|", "\\|") + "`" if value else ""


def _md_risks(risky_rows: list[tuple[OverlayDiff, ResourceChange, FieldChange | None]]) -> list[str]:
    """The table of risky changes, one row per risky resource or field."""
    out = ["| Risk | Overlay | Resource | Field | Before | After |", "|---|---|---|---|---|---|"]
    for d, c, f in risky_rows:
        if f is None:
            out.append(f"| :warning: {c.risk} | {d.name} | {c.title} | | | |")
        else:
            out.append(
                f"| :warning: {f.risk} | {d.name} | {c.title} | {_md(f.path)} | {_md(fmt(f.before, 60))} "
                f"| {_md(fmt(f.after, 60))} |"
            )
    return [*out, ""]


def _md_overlay(d: OverlayDiff) -> list[str]:
    """One changed overlay: a note, or a collapsed block with every change as a diff."""
    if not d.changes:
        return [f"**{d.name}**: {d.note}", ""] if d.note else []
    counts = {op: sum(1 for c in d.changes if c.op == op) for op in "+-~"}
    label = ", ".join(
        f"{n} {w}" for w, n in (("added", counts["+"]), ("removed", counts["-"]), ("changed", counts["~"])) if n
    )
    out = [
        f"<details><summary><b>{d.name}</b>: {label}" + (f" ({d.note})" if d.note else "") + "</summary>",
        "",
        "```diff",
    ]
    for c in d.changes:
        marker = {"+": "+", "-": "-", "~": "!"}[c.op]
        out.append(f"{marker} {c.title}" + (f"   [{c.risk}]" if c.risk else ""))
        for f in c.fields:
            out.append(
                f"{'!' if f.risk else ' '}   {f.path}: {fmt(f.before)} -> {fmt(f.after)}"
                + (f"   [{f.risk}]" if f.risk else "")
            )
    return [*out, "```", "", "</details>", ""]


def markdown_report(base: str, commit: str, diffs: list[OverlayDiff]) -> str:
    """The report as a pull-request comment: a summary, the risky changes as a table, and each
    changed overlay collapsed; cut to fit GitHub's comment limit."""
    changed = [d for d in diffs if d.changes or d.error or d.note]
    risky_rows = [
        (d, c, f)
        for d in diffs
        for c in d.changes
        for f in ([None] if c.risk else []) + [f for f in c.fields if f.risk]
    ]
    kinds = sorted({(f.risk if f else c.risk) for d, c, f in risky_rows})
    out = [f"### Rendered changes against `{base}` (`{commit[:12]}`)", ""]
    summary = f"**{len(changed)} of {len(diffs)} overlay(s) changed**"
    if risky_rows:
        summary += f" · :warning: **{len(risky_rows)} risky change(s)**: {', '.join(kinds)}"
    out += [summary, ""]
    errors = [d for d in diffs if d.error]
    out += [f":x: `overlays/{d.name}` does not build: {_md(d.error)}" for d in errors] + ([""] if errors else [])
    if risky_rows:
        out += _md_risks(risky_rows)
    for d in changed:
        out += _md_overlay(d)
    unchanged = [d.name for d in diffs if d not in changed]
    if unchanged:
        out.append(f"Unchanged: {', '.join(unchanged)}")
    text = "\n".join(out).rstrip() + "\n"
    if len(text) > MARKDOWN_LIMIT:  # GitHub rejects a comment over 65536 characters
        cut = text.rfind("\n", 0, MARKDOWN_LIMIT - 200)
        text = (
            text[:cut]
            + "\n```\n\n</details>\n\n**Truncated**: the full report is `make diff BASE="
            + base
            + "` (text).\n"
        )
    return text


def diff(args: argparse.Namespace) -> int:
    root = resolve_root(args.repo)
    commit, diffs = run_diff(root, args.base)
    report = markdown_report if args.markdown else text_report
    sys.stdout.write(report(args.base, commit, diffs).rstrip("\n") + "\n")
    return EXIT_TOOL if any(d.error for d in diffs) else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("diff", __doc__, edits=False)
    p.add_argument("--base", default="origin/main", help="git revision to compare against (default origin/main)")
    p.add_argument("--markdown", action="store_true", help="print Markdown for a pull-request comment")
    return cli.run("diff", p, argv, diff)


if __name__ == "__main__":
    sys.exit(main())
