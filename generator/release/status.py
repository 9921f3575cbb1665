"""``make status``: one table of every environment in platform.yaml, read from the rendered
manifests (``kustomize build`` of each overlay), so it shows what Argo CD would deploy.

One row per server Deployment (a rolling environment has one per model; blue-green and canary
one per slot or track). Columns: environment, strategy, namespace, variant, server image,
model and version (followed from the Deployment's ``MODEL_VERSION`` to its ConfigMap), the
pinned ``MODEL_DIGEST`` (its first 12 hex digits), where the server gets the files (``image
sha256:<12 hex>``: the model image it pulls; ``store``: the model store claim, where the
environment trains), the model card's headline metric (``registry/<model>/<version>.yaml``;
``no card``, ``card invalid``, ``digest is not the card's`` or ``image is not the card's`` when
the pin is not what was reviewed, as ``make validate``'s model-pin and model-image checks say),
replicas (``min-max HPA`` when an autoscaler owns them, else the pinned count), traffic and
the trainer image of the training Jobs (``- (serve-only)`` where the environment does not train,
``""`` in ``--json``):

- rolling: ``all``;
- blue-green: ``ACTIVE`` for the slot the production Service ``<model>-server`` selects,
  ``preview`` for the one ``<model>-server-preview`` selects;
- canary: the weight of the HTTPRoute ``<model>-server`` (its weighted rule) and,
  in brackets, the share of pods, which is the traffic share where no Gateway exists.

``--json`` prints the same facts as JSON. Exit codes: 0 done, 2 bad input, 3 an overlay does
not build (the table is still printed, with the error in its row).
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from generator.config import Environment
from generator.conventions import DIGEST_KEY, RELEASE_KEY, card_path
from generator.registry import cards
from generator.release import cli
from generator.release.errors import EXIT_OK, EXIT_TOOL, ToolFailed
from generator.release.files import overlay_problems
from generator.release.overlay import load_platform, resolve_root
from generator.release.rendered import Manifests, render_docs, short_image
from generator.strategy import Strategy
from generator.validate.model_pins import model_image

#: The trainer-image cell of an environment that renders no training Job (``train: false``).
SERVE_ONLY = "- (serve-only)"


@dataclass
class Row:
    model: str
    variant: str
    image: str
    model_version: str
    model_digest: str  # "" when none is pinned
    model_image: str  # the model image the server pulls (repo@sha256:...), "" when it reads the store
    card: str  # the card's headline metric, or why there is none
    replicas: str
    traffic: str
    weight: int | None = None  # canary: HTTPRoute weight in percent
    pod_share: float | None = None  # share of the model's serving pods, percent
    active: bool | None = None  # blue-green: selected by the production Service


@dataclass
class EnvStatus:
    name: str
    strategy: str
    namespace: str
    overlay: str
    trainer: str = ""
    rows: list[Row] = field(default_factory=list)
    error: str = ""


def job_pod_spec(job: dict) -> dict:
    """The pod spec of a Job or a CronJob."""
    spec = job["spec"].get("jobTemplate", {}).get("spec", job["spec"]) if job["kind"] == "CronJob" else job["spec"]
    return spec["template"]["spec"]


def card_summary(root: Path, model: str, version: str, digest: str, image: str = "") -> str:
    """The model card's headline metric for a pin, or why the pin is not a reviewed card."""
    path = root / card_path(model, version)
    if not (path.exists() or path.is_symlink()):
        return "no card"
    try:
        card = cards.read_card(root, model, version)
    except cards.CardError:
        return "card invalid"
    mismatch = card.mismatch(digest or card.digest, image or None)
    if mismatch:
        return f"{mismatch} is not the card's"
    return card.headline() + ("" if digest else ", digest not pinned")


def env_status(root: Path, env: Environment, models: list[str]) -> EnvStatus:
    """One environment as its overlay renders: a row per server Deployment, or the one error
    that stops it from rendering."""
    status = EnvStatus(env.name, env.strategy.name, env.namespace, env.overlay)
    problems = overlay_problems(root / env.overlay, env.overlay)
    if problems:  # the release file's own words, not kustomize's
        status.error = problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        return status
    try:
        m = Manifests(render_docs(root / env.overlay))
    except ToolFailed as exc:
        status.error = str(exc).splitlines()[-1] if str(exc) else "kustomize build failed"
        return status
    trainers = sorted(
        {
            short_image(c["image"])
            for job in m.of_kind("Job") + m.of_kind("CronJob")
            for c in job_pod_spec(job)["containers"]
        }
    )
    status.trainer = ", ".join(trainers)
    for model in models:
        status.rows += _model_rows(root, env.strategy, m, model)
    return status


def _model_rows(root: Path, strategy: Strategy, m: Manifests, model: str) -> list[Row]:
    """The rows of one model's server Deployments, variants in the strategy's order."""
    label = strategy.variant_label
    deployments = m.server_deployments(model)
    total = sum(int(d["spec"].get("replicas", 1)) for d in deployments) or 0
    weights = m.route_weights(f"{model}-server") if strategy.routes_by_weight else {}
    production = m.get("Service", f"{model}-server")
    live = {d["metadata"]["name"] for d in m.selected_workloads(production)} if production else set()
    shown = {
        d["metadata"]["name"]
        for name in strategy.variant_services(f"{model}-server").values()
        if (service := m.get("Service", name))
        for d in m.selected_workloads(service)
    }

    def rank(d: dict) -> tuple:
        variant = m.pod_labels(d).get(label, "") if label else ""
        order = strategy.variants
        return (order.index(variant) if variant in order else len(order), d["metadata"]["name"])

    rows = []
    for d in sorted(deployments, key=rank):
        name = d["metadata"]["name"]
        container = m.container(d, "server")
        hpa = m.hpa_for(d)
        count = int(d["spec"].get("replicas", 1))
        version = m.env_value(container, RELEASE_KEY)
        digest = m.env_value(container, DIGEST_KEY)
        digest = "" if digest == "?" else digest
        pulled = model_image(d["spec"]["template"]["spec"])
        row = Row(
            model=model,
            variant=m.pod_labels(d).get(label, "") if label else "",
            image=container["image"],
            model_version=version,
            model_digest=digest,
            model_image=pulled[1] if pulled else "",
            card=card_summary(root, model, version, digest, pulled[1] if pulled else ""),
            replicas=(f"{hpa['spec'].get('minReplicas', 1)}-{hpa['spec']['maxReplicas']} HPA" if hpa else str(count)),
            traffic="",
        )
        if strategy.routes_by_weight:
            row.weight = round(100 * weights.get(name, 0) / (sum(weights.values()) or 1))
            row.pod_share = round(100 * count / total, 1) if total else 0.0
        elif strategy.progressive:  # slots: the production Service selects one of them
            row.active = name in live
        row.traffic = strategy.traffic(
            live=name in live, previewed=name in shown, weight=row.weight or 0, pod_share=row.pod_share or 0.0
        )
        rows.append(row)
    return rows


def collect(root: Path) -> list[EnvStatus]:
    platform = load_platform(root)
    models = [m.name for m in platform.models]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda env: env_status(root, env, models), platform.environments))


def table(statuses: list[EnvStatus]) -> str:
    header = (
        "ENVIRONMENT",
        "STRATEGY",
        "NAMESPACE",
        "VARIANT",
        "SERVER IMAGE",
        "MODEL",
        "DIGEST",
        "MODEL FROM",
        "CARD",
        "REPLICAS",
        "TRAFFIC",
        "TRAINER IMAGE",
    )
    lines: list[tuple[str, ...]] = [header]
    for s in statuses:
        first = (s.name, s.strategy, s.namespace)
        if s.error:
            lines.append((*first, "-", f"ERROR: {s.error}", "", "", "", "", "", "", ""))
            continue
        for i, r in enumerate(s.rows):
            lines.append(
                (
                    *(first if i == 0 else ("", "", "")),
                    r.variant or "-",
                    short_image(r.image),
                    f"{r.model} v{r.model_version}",
                    r.model_digest[: len("sha256:") + 12] or "-",
                    f"image {r.model_image.partition('@')[2][: len('sha256:') + 12]}" if r.model_image else "store",
                    r.card,
                    r.replicas,
                    r.traffic,
                    (s.trainer or SERVE_ONLY) if i == 0 else "",
                )
            )
    widths = [max(len(line[i]) for line in lines if not line[4].startswith("ERROR")) for i in range(len(header))]
    out = []
    for line in lines:
        cells = [c.ljust(w) for c, w in zip(line, widths, strict=True)]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def status(args: argparse.Namespace) -> int:
    root = resolve_root(args.repo)
    statuses = collect(root)
    if args.json:
        print(json.dumps([asdict(s) for s in statuses], indent=2))
    else:
        print(table(statuses))
    return EXIT_TOOL if any(s.error for s in statuses) else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("status", __doc__, edits=False)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return cli.run("status", p, argv, status)


if __name__ == "__main__":
    import sys

    sys.exit(main())
