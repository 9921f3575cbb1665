"""Discover and render what a pull request would deploy: every overlay, the Argo CD objects.

Overlays are discovered, never listed: every ``overlays/*/kustomization.yaml`` except the
generated ``overlays/base`` and ``overlays/components/*``, and the pull-request previews' two
(rendered per pull request, as Argo CD does: ``generator/validate/preview.py``). Rendering runs the pinned kustomize
(``generator.tools.render_overlay``) in parallel threads (each is a subprocess).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from generator.inputs import InputError, load_yaml, read_text
from generator.paths import NOT_ENVIRONMENTS
from generator.validate.model import Finding, Resource
from generator.validate.yamlload import first_alias, load_stream

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


@dataclass
class Rendered:
    """The outcome of rendering one overlay (or loading argocd/)."""

    name: str  # "dev", "prod", ..., "argocd"
    path: str  # repository-relative directory
    resources: list[Resource] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    namespace: str = ""  # the kustomization's namespace (the overlay's), if set
    ok: bool = True
    text: str = ""  # the rendered stream (for kubeconform)


def kustomization_file(directory: Path) -> Path | None:
    """The kustomization of ``directory``: any entry of that name but a directory, so that a FIFO
    or a broken link is reported (build, release-file), never silently taken for no overlay."""
    for name in KUSTOMIZATION_NAMES:
        path = directory / name
        if (path.exists() or path.is_symlink()) and not path.is_dir():
            return path
    return None


def discover_overlays(root: Path) -> list[Path]:
    """Every environment overlay directory under ``root/overlays``, sorted by name."""
    base = root / "overlays"
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and p.name not in NOT_ENVIRONMENTS and kustomization_file(p))


def kustomization_namespace(directory: Path) -> str:
    """The kustomization's ``namespace``, read through the input layer; "" when it cannot be
    read or parsed (the build and release-file findings name the file and the problem)."""
    path = kustomization_file(directory)
    if path is None:
        return ""
    try:
        data = load_yaml(read_text(path, str(path)), str(path))
    except InputError:
        return ""
    value = data.get("namespace") if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def parse_rendered(name: str, text: str, source: str, keep_lines: bool = False) -> tuple[list[Resource], list[Finding]]:
    """Parse a rendered stream into resources; YAML problems become findings. ``keep_lines``:
    the stream is a file in the repository, so a resource's line is worth reporting."""
    stream = load_stream(text)
    findings = [
        Finding(
            source,
            "",
            "",
            dup.path or "(top level)",
            f"duplicate key {dup.key!r} (first at line {dup.first_line}, repeated at line {dup.line})",
            "yaml-duplicate-key",
            dup.line,
        )
        for dup in stream.duplicates
    ]
    if stream.error:
        findings.append(Finding(source, "", "", "", f"invalid YAML: {stream.error}", "yaml-syntax", stream.error_line))
    resources = []
    for doc in stream.documents:
        if isinstance(doc.data, dict) and doc.data.get("kind") == "List" and isinstance(doc.data.get("items"), list):
            items = doc.data["items"]
        else:
            items = [doc.data]
        for item in items:
            if not isinstance(item, dict):
                findings.append(
                    Finding(
                        source, "", "", "", f"document at line {doc.line} is not a mapping", "yaml-syntax", doc.line
                    )
                )
                continue
            resources.append(Resource(item, name, doc.line if keep_lines else None))
    return resources, findings


def render_overlay_dir(root: Path, directory: Path, render: Callable[[Path], str]) -> Rendered:
    rel = directory.relative_to(root).as_posix()
    result = Rendered(directory.name, rel, namespace=kustomization_namespace(directory))
    try:
        text = render(directory)
    except Exception as exc:
        message = " ".join(str(exc).split())
        result.findings.append(Finding(result.name, "", "", "", f"kustomize build failed: {message}", "build"))
        result.ok = False
        return result
    result.text = text
    result.resources, result.findings = parse_rendered(result.name, text, result.name)
    return result


def argocd_kustomizations(root: Path) -> list[Path]:
    """The kustomizations (and Kustomize Components, such as the optional signature policy) in
    the directories below argocd/: each is rendered and checked like an overlay, not read as files."""
    directory = root / "argocd"
    if not directory.is_dir() or kustomization_file(directory):
        return []
    return sorted(p for p in directory.rglob("*") if p.is_dir() and kustomization_file(p))


def load_argocd(root: Path, render: Callable[[Path], str]) -> Rendered | None:
    """Argo CD objects: rendered with kustomize if argocd/ is a kustomization, else read as files
    (but for the kustomizations below it: ``argocd_kustomizations``)."""
    directory = root / "argocd"
    if not directory.is_dir():
        return None
    if kustomization_file(directory):
        return render_overlay_dir(root, directory, render)
    result = Rendered("argocd", "argocd")
    built = argocd_kustomizations(root)
    for path in sorted(directory.rglob("*.y*ml")):
        if any(d == path.parent or d in path.parents for d in built):
            continue
        rel = path.relative_to(root).as_posix()
        try:
            text = read_text(path, rel)
        except InputError as exc:  # a FIFO would block, a non-UTF-8 file would end the run
            result.findings.extend(
                Finding(rel, "", "", "", line.removeprefix(f"{rel}: "), "yaml-syntax") for line in exc.problems
            )
            continue
        alias = first_alias(text)
        if alias is not None:  # make synth writes none; one can make an object that holds itself
            message = f"line {alias[1]}: alias *{alias[0]}: aliases are not accepted here; write the value out"
            result.findings.append(Finding(rel, "", "", "", message, "yaml-syntax"))
            continue
        # A file below argocd/ is named by its directory: argocd/admin is the admin Application's.
        resources, findings = parse_rendered(path.parent.relative_to(root).as_posix(), text, rel, keep_lines=True)
        result.text += text if text.startswith("---") else "---\n" + text
        result.resources.extend(resources)
        result.findings.extend(findings)
    return result


def by_directory(argocd: Rendered) -> dict[str, Rendered]:
    """argocd/'s objects split by the directory that holds them (``argocd``, ``argocd/admin``):
    what an Application whose path is that directory deploys (Argo CD does not recurse)."""
    out: dict[str, Rendered] = {argocd.path: Rendered(argocd.name, argocd.path)}
    for res in argocd.resources:
        directory = res.overlay if res.overlay.startswith(argocd.path) else argocd.path
        out.setdefault(directory, Rendered(directory, directory)).resources.append(res)
    return out


def chart_targets(root: Path) -> list[tuple[Path, Path | None]]:
    """(chart directory, values file or None for the defaults) for every chart under charts/:
    its default values plus every ``ci/*-values.yaml`` (the chart-testing convention)."""
    targets: list[tuple[Path, Path | None]] = []
    for chart_file in sorted((root / "charts").glob("*/Chart.yaml")):
        chart = chart_file.parent
        targets.append((chart, None))
        targets.extend((chart, values) for values in sorted((chart / "ci").glob("*values.yaml")))
    return targets


def render_chart(root: Path, chart: Path, values: Path | None) -> Rendered:
    """``helm template`` a chart (tests skipped) with its defaults or one values file."""
    from generator import tools

    rel = chart.relative_to(root).as_posix()
    name = rel if values is None else f"{rel}[{values.relative_to(chart).as_posix()}]"
    result = Rendered(name, rel)
    args = [tools.helm_path(), "template", chart.name, str(chart), "--skip-tests"]
    if values is not None:
        args += ["--values", str(values)]
    try:
        text = tools.run_tool(args)
    except Exception as exc:
        result.findings.append(
            Finding(name, "", "", "", "helm template failed: " + " ".join(str(exc).split()), "build")
        )
        result.ok = False
        return result
    result.text = text
    result.resources, result.findings = parse_rendered(name, text, name)
    return result


def default_renderer() -> Callable[[Path], str]:
    """The pinned kustomize; bootstraps it now, so a missing tool is a usage error (exit 2),
    not one build finding per overlay."""
    from generator import tools  # imported late: tests may inject their own renderer

    tools.kubectl_path()
    return tools.render_overlay


def render_all(
    root: Path,
    overlays: list[Path],
    render: Callable[[Path], str] | None = None,
    jobs: int | None = None,
    with_argocd: bool = True,
) -> tuple[list[Rendered], Rendered | None]:
    """Render the overlays in parallel threads (each render is a subprocess)."""
    render = render or default_renderer()
    workers = max(1, min(jobs or (os.cpu_count() or 2) * 2, len(overlays) + 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        argocd_future = pool.submit(load_argocd, root, render) if with_argocd else None
        rendered = list(pool.map(lambda d: render_overlay_dir(root, d, render), overlays))
        return rendered, argocd_future.result() if argocd_future else None
