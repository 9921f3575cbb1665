"""Names shared by what the generator writes and what the release commands edit.

Kept free of cdk8s (which starts Node.js through jsii) so the release commands stay fast.
"""

from __future__ import annotations

from generator.strategy import ALL_VARIANTS
from services.model_image import UNPINNED_DIGEST  # noqa: F401 (re-exported: the placeholder digest, defined once)

#: The Kubernetes minor version the manifests target: schemas, kubectl, Pod Security level.
KUBERNETES_VERSION = "1.33"
RELEASE_KEY = "MODEL_VERSION"
#: The release ConfigMap key beside RELEASE_KEY: the version's digest, copied from its model card.
DIGEST_KEY = "MODEL_DIGEST"
#: Where model cards live: ``registry/<model>/<version>.yaml`` (see registry/README.md).
REGISTRY_DIR = "registry"
#: The model version a release ConfigMap carries until an overlay pins its own.
DEFAULT_MODEL_VERSION = "1"
#: The hand-edited object that holds a canary overlay's traffic weights (``traffic.yaml``): kustomize
#: reads it (``config.kubernetes.io/local-config``, so it is never deployed) and the canary
#: component's replacements copy its numbers into the generated HTTPRoute and GRPCRoute.
CANARY_WEIGHTS_API_VERSION = "release.ml-gitops/v1"
CANARY_WEIGHTS_KIND = "CanaryWeights"
LOCAL_CONFIG_ANNOTATION = "config.kubernetes.io/local-config"
#: Predict requests over REST and gRPC (the server's ``metrics.PREDICT_ENDPOINTS``; a contract
#: test checks): the selector of the generated rules, the dashboard and the canary analysis.
PREDICT = 'handler=~"predict|predict_version|grpc_predict"'


def metrics_service_name(model: str) -> str:
    """The headless Service over every server pod of a model: the ServiceMonitor's ``job`` label."""
    return f"{model}-server-metrics"


def canary_weights_name(model: str) -> str:
    """Name of a model's CanaryWeights object (the HTTPRoute it sets has the same name)."""
    return f"{model}-server"


def release_config_map_name(model: str, variant: str = "") -> str:
    """Name of the ConfigMap that pins the model version an overlay releases.

    The base (or a component, per variant) declares it with a configMapGenerator; an overlay
    patches its ``MODEL_VERSION`` in ``release.yaml``, so the version is written once per
    environment and the hash suffix rolls the server when it changes.
    """
    return f"{model}-release" + (f"-{variant}" if variant else "")


def release_config_map_model(name: str) -> tuple[str, str] | None:
    """``(model, variant)`` of a release ConfigMap name (the inverse of ``release_config_map_name``),
    or None when ``name`` is not one."""
    for variant in ("", *ALL_VARIANTS):
        suffix = "-release" + (f"-{variant}" if variant else "")
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], variant
    return None


def card_path(model: str, version: str | int) -> str:
    """The repository-relative path of a model card."""
    return f"{REGISTRY_DIR}/{model}/{version}.yaml"


def model_image_name(model: str, variant: str = "") -> str:
    """The logical image name a Deployment gives its model image (``mnist-model``, or
    ``mnist-model-blue`` for a slot or track); the overlay's ``images:`` maps it to the real
    repository (``newName``, from the model card) and the digest, so a registry that moves
    leaves no stale entry behind."""
    return f"{model}-model" + (f"-{variant}" if variant else "")


def variant_image_name(repository: str, variant: str) -> str:
    """The logical image name a variant's Deployment uses (``inference-server-blue``); the
    overlay's ``images:`` maps it to the real repository and tag."""
    return f"{repository.rsplit('/', 1)[-1]}-{variant}"


def resource_plural(kind: str) -> str:
    """The API resource of a kind, as RBAC rules and CRD names write it (``NetworkPolicy`` ->
    ``networkpolicies``): the regular English plural the API uses for every kind the repository
    deploys (an irregular one, such as ``Endpoints``, would need its own entry)."""
    lower = kind.lower()
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def application_name(system: str, environment: str) -> str:
    """The Argo CD Application that syncs one environment (``mnist-platform-dev``)."""
    return f"{system}-{environment}"


def environment_project(project: str, environment: str) -> str:
    """The AppProject that bounds one environment (``ml-platform-dev``): ``project`` is
    platform.yaml's ``argocd.project``, which prefixes every project the generator writes."""
    return f"{project}-{environment}"


#: Every pull-request preview's namespace starts with this; the rest is the PR number only.
PREVIEW_NAMESPACE_PREFIX = "pr-"
#: Every preview namespace, as the previews' AppProjects match them: the one wildcard
#: destination validate admits (``argocd-project-wildcard``).
PREVIEW_NAMESPACES = f"{PREVIEW_NAMESPACE_PREFIX}*"


def preview_namespace(number: int | str) -> str:
    """The namespace of one pull request's preview (``pr-7``): named from its number only, so a
    branch name (which the author chooses) never reaches a Kubernetes name."""
    return f"{PREVIEW_NAMESPACE_PREFIX}{number}"
