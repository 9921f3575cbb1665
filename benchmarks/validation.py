"""``make bench-validate``: how fast is ``make validate``? A benchmark, not a test.

Two measurements, one run, printed as a table with ratios:

1. Schema validation throughput (resources/s, one core) on the same resources: this validator's
   cached compiled validators (``SchemaStore``) against ``kubernetes_validate.validate(...,
   strict=True)`` called per resource, which reloads its schemas on every call (target: >= 10x),
   and against kubeconform ``-strict -n 1`` (the tool users know, whenever it is available) on
   the same resources from the same pinned schemas, its start-up and schema loading included. The
   resources are the rendered overlays of this repository plus the validation test fixture,
   Kubernetes kinds only (kubernetes-validate has no CRD schemas).
2. Whole ``make validate`` (render with the real kustomize, every check, detect-secrets; no
   freshness check, as the synthetic repository has no generator) on a generated large platform:
   N models x 5 overlays, for N = 10, 25 and 50, to show the growth is linear. Target: 50 models
   under 60 s. The large platform is synthesized as a plain Kustomize tree (a base with the
   test fixture's objects copied per model, five overlays, an AppProject and one Application per
   overlay), not through ``make synth``, so it measures validation alone.

Results also go to ``.bench/validation.json``.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from generator.paths import REPO_ROOT
from generator.tools.kubeconform import find_kubeconform
from generator.validate import engine, kubeconform, render
from generator.validate.schemas import SchemaStore

FIXTURE = REPO_ROOT / "tests" / "validate" / "fixtures" / "clean.yaml"
K8S_VERSION = "1.33"
ENVIRONMENTS = ("dev", "staging", "prod", "prod-blue-green", "prod-canary")
REPO_URL = "https://git.example.com/ml/bench.git"


def sample_resources() -> list[dict]:
    docs: list[dict] = []
    overlays = render.discover_overlays(REPO_ROOT)
    rendered, _ = render.render_all(REPO_ROOT, overlays, with_argocd=False)
    for item in rendered:
        docs.extend(r.doc for r in item.resources)
    docs.extend(d for d in yaml.safe_load_all(FIXTURE.read_text()) if d)
    store = SchemaStore(K8S_VERSION)
    # Kubernetes kinds only: kubernetes-validate has no schemas for CRDs.
    return [
        d
        for d in docs
        if store._load_schema(d["apiVersion"], d["kind"]) not in (None,)
        and store._load_schema(d["apiVersion"], d["kind"])[1]
    ]


def time_loop(fn, docs: list[dict], min_seconds: float) -> tuple[float, int]:
    count, started = 0, time.perf_counter()
    while True:
        for doc in docs:
            fn(doc)
        count += len(docs)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return count / elapsed, count


def bench_throughput(docs: list[dict]) -> dict:
    import kubernetes_validate

    def theirs(doc):
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError:
            pass

    cold_store = SchemaStore(K8S_VERSION)
    started = time.perf_counter()
    for doc in docs:
        cold_store.errors(doc)
    cold = len(docs) / (time.perf_counter() - started)
    ours, ours_n = time_loop(cold_store.errors, docs, 2.0)
    baseline, base_n = time_loop(theirs, docs, 2.0)
    kubeconform_rate = bench_kubeconform(docs)
    return {
        "kubeconform_per_s": kubeconform_rate,
        "resources": len(docs),
        "ours_warm_per_s": ours,
        "ours_cold_per_s": cold,
        "kubernetes_validate_per_s": baseline,
        "ratio_warm": ours / baseline,
        "ratio_cold": cold / baseline,
        "samples": {"ours": ours_n, "kubernetes_validate": base_n},
    }


def bench_kubeconform(docs: list[dict], copies: int = 40) -> float | None:
    """kubeconform -strict on one core over ``copies`` copies of ``docs`` (resources/s, wall time of
    the whole process, best of 3), or None when no kubeconform is available."""
    found = find_kubeconform()
    if found is None:
        return None
    schemas = kubeconform.prepare_schemas(REPO_ROOT, K8S_VERSION)
    with tempfile.TemporaryDirectory(prefix="bench-kubeconform-") as tmp:
        stream = Path(tmp) / "resources.yaml"
        stream.write_text(yaml.safe_dump_all(docs * copies))
        args = [found.path, "-strict", "-summary", "-n", "1", "-kubernetes-version", f"{K8S_VERSION}.0"]
        args += ["-schema-location", f"{schemas}/{kubeconform.K8S_TEMPLATE}", str(stream)]
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True)
            best = min(best, time.perf_counter() - started)
    return len(docs) * copies / best


def _rename(doc: dict, model: str) -> dict:
    """Copy a fixture object for one model: names and the app label get the model's name."""
    text = json.dumps(doc)
    for old in ("web-config", "web", "train", "models", "dist", "dist-workers"):
        text = text.replace(f'"{old}"', f'"{model}-{old}"')
    return json.loads(text)


def synthesize(root: Path, models: int) -> None:
    """A platform of ``models`` copies of the fixture as a plain Kustomize tree: the base, one
    overlay per environment, argocd/ with one AppProject and an Application per overlay, and
    platform.yaml naming the environments."""
    kinds = _write_base(root / "overlays" / "base", models)
    argocd = root / "argocd"
    argocd.mkdir()
    (argocd / "appproject.yaml").write_text(yaml.safe_dump(_project(kinds)))
    for env in ENVIRONMENTS:
        _write_environment(root, argocd, env)
    (root / "platform.yaml").write_text(
        yaml.safe_dump(
            {"environments": [{"name": e, "namespace": f"ml-{e}", "overlay": f"overlays/{e}"} for e in ENVIRONMENTS]}
        )
    )


def _write_base(base: Path, models: int) -> set[tuple[str, str]]:
    """The base: one file of renamed fixture objects per model (no namespace: the overlays set
    it); returns the (group, kind) pairs written, which the AppProject must permit."""
    fixture = [d for d in yaml.safe_load_all(FIXTURE.read_text()) if d]
    base.mkdir(parents=True)
    files = []
    kinds = set()
    for index in range(models):
        model = f"m{index:03d}"
        docs = []
        for doc in fixture:
            doc = _rename(copy.deepcopy(doc), model)
            doc["metadata"].pop("namespace", None)
            kinds.add((doc["apiVersion"].rpartition("/")[0], doc["kind"]))
            docs.append(doc)
        name = f"{model}.yaml"
        (base / name).write_text("---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs))
        files.append(name)
    (base / "kustomization.yaml").write_text(
        yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": files})
    )
    return kinds


def _project(kinds: set[tuple[str, str]]) -> dict:
    """The one AppProject: this repository, every environment's namespace, exactly ``kinds``."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "bench", "namespace": "argocd"},
        "spec": {
            "sourceRepos": [REPO_URL],
            "destinations": [
                {"server": "https://kubernetes.default.svc", "namespace": f"ml-{e}"} for e in ENVIRONMENTS
            ],
            "clusterResourceWhitelist": [],
            "namespaceResourceWhitelist": [{"group": g, "kind": k} for g, k in sorted(kinds)],
        },
    }


def _write_environment(root: Path, argocd: Path, env: str) -> None:
    """One environment: its overlay of the base (namespace, image tag, label) and its Application."""
    overlay = root / "overlays" / env
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": f"ml-{env}",
                "resources": ["../base"],
                "images": [{"name": "registry.example.com/ml/server", "newTag": "1.0.1"}],
                "labels": [{"pairs": {"environment": env}}],
            },
            sort_keys=False,
        )
    )
    app = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": f"bench-{env}", "namespace": "argocd"},
        "spec": {
            "project": "bench",
            "source": {"repoURL": REPO_URL, "targetRevision": "main", "path": f"overlays/{env}"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": f"ml-{env}"},
            "syncPolicy": {"syncOptions": ["RespectIgnoreDifferences=true"]},
            "ignoreDifferences": [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}],
        },
    }
    (argocd / f"application-{env}.yaml").write_text(yaml.safe_dump(app))


def bench_platform(models: int, repeat: int = 2) -> dict:
    """Best of ``repeat`` cold runs (no cache: each run gets a fresh copy), which filters out
    noise from other processes on the machine."""
    times: list[float] = []
    with_kubeconform: list[float] = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix=f"bench-validate-{models}-") as tmp:
            root = Path(tmp)
            synthesize(root, models)
            started = time.perf_counter()
            result = engine.run(
                engine.Options(root=root, kubernetes_version=K8S_VERSION, freshness=False, kubeconform="off")
            )
            times.append(time.perf_counter() - started)
            if find_kubeconform():
                with tempfile.TemporaryDirectory(prefix=f"bench-validate-kc-{models}-") as other:
                    synthesize(Path(other), models)  # cold again: no cache from the run above
                    started = time.perf_counter()
                    engine.run(engine.Options(root=Path(other), kubernetes_version=K8S_VERSION, freshness=False))
                    with_kubeconform.append(time.perf_counter() - started)
            # Where the time goes: kustomize alone on one overlay, and the in-process checks alone.
            kustomize_started = time.perf_counter()
            text = render.default_renderer()(root / "overlays" / "dev")
            kustomize_one = time.perf_counter() - kustomize_started
            resources, _ = render.parse_rendered("dev", text, "dev")
            checks_started = time.perf_counter()
            engine.check_overlay(SchemaStore(K8S_VERSION), resources)
            checks_one = time.perf_counter() - checks_started
    elapsed = min(times)
    return {
        "models": models,
        "overlays": result.stats["overlays"],
        "resources": result.stats["resources"],
        "findings": len(result.findings),
        "seconds": elapsed,
        "seconds_with_kubeconform": min(with_kubeconform) if find_kubeconform() else None,
        "kustomize_one_overlay_s": kustomize_one,
        "checks_one_overlay_s": checks_one,
        "findings_sample": [f.render() for f in result.findings[:5]],
    }


def main() -> int:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"bench-validate: Kubernetes {K8S_VERSION} strict schemas, {os.cpu_count()} CPU(s), "
        f"load average {load:.1f} at start"
    )
    docs = sample_resources()
    tp = bench_throughput(docs)
    print(f"\nSchema validation, {tp['resources']} distinct Kubernetes resources (repository overlays + fixture):")
    print(f"  this validator, warm (cached validators)  {tp['ours_warm_per_s']:10.0f} resources/s")
    print(f"  this validator, cold (compiling on first) {tp['ours_cold_per_s']:10.0f} resources/s")
    print(f"  kubernetes_validate.validate() per call   {tp['kubernetes_validate_per_s']:10.0f} resources/s")
    print(f"  ratio warm: {tp['ratio_warm']:.1f}x   ratio cold: {tp['ratio_cold']:.1f}x   (target >= 10x)")
    if tp["kubeconform_per_s"] is None:
        print("  kubeconform: not on PATH and KUBECONFORM unset: no comparison")
    else:
        print(f"  kubeconform -strict -n 1 (same schemas)   {tp['kubeconform_per_s']:10.0f} resources/s")
        print(f"  this validator warm / kubeconform: {tp['ours_warm_per_s'] / tp['kubeconform_per_s']:.2f}x")

    print(
        "\nWhole make validate (no freshness check; cold: no cache) on a synthesized platform, 5 overlays, best of 2:"
    )
    runs = [bench_platform(n) for n in (10, 25, 50)]
    for run in runs:
        per = run["seconds"] / run["models"]
        print(
            f"  {run['models']:3d} models: {run['resources']:5d} resources in {run['seconds']:6.2f} s "
            f"({per * 1000:5.0f} ms/model, {run['resources'] / run['seconds']:6.0f} resources/s, "
            f"{run['findings']} finding(s))"
        )
        if run["seconds_with_kubeconform"] is not None:
            print(f"       with the kubeconform cross-check too: {run['seconds_with_kubeconform']:.2f} s")
        print(
            f"       of which, per overlay: kustomize build {run['kustomize_one_overlay_s']:.2f} s, "
            f"all in-process checks {run['checks_one_overlay_s']:.2f} s"
        )
        for line in run["findings_sample"]:
            print(f"      {line}")
    growth = (runs[-1]["seconds"] / runs[0]["seconds"]) / (runs[-1]["models"] / runs[0]["models"])
    checks_growth = (runs[-1]["checks_one_overlay_s"] / runs[0]["checks_one_overlay_s"]) / (
        runs[-1]["models"] / runs[0]["models"]
    )
    kustomize_growth = (runs[-1]["kustomize_one_overlay_s"] / runs[0]["kustomize_one_overlay_s"]) / (
        runs[-1]["models"] / runs[0]["models"]
    )
    print(
        f"  50 models: {runs[-1]['seconds']:.1f} s (target < 60 s). Growth from 10 to 50 models, divided by the "
        f"size ratio (1.0 = linear): whole run {growth:.2f}, in-process checks {checks_growth:.2f}, "
        f"kustomize build {kustomize_growth:.2f}"
    )
    out = REPO_ROOT / ".bench" / "validation.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"throughput": tp, "platform": runs}, indent=2) + "\n")
    print(f"\nbench-validate: results in {out.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
