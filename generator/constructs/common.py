"""Names, labels and the restricted pod-security defaults shared by the constructs."""

from __future__ import annotations

from typing import Any

from cdk8s_plus_33 import k8s

MANAGED_BY = "cdk8s"
MODEL_MOUNT = "/models"
TRAINER_UID = 10001
# Argo CD must never delete or prune the model store: it holds every trained version.
ARGOCD_KEEP = {"argocd.argoproj.io/sync-options": "Delete=false,Prune=false"}


def labels(*, name: str, instance: str, component: str, part_of: str) -> dict[str, str]:
    """The recommended ``app.kubernetes.io/*`` labels. ``version`` is left out on purpose: overlays
    pin images with Kustomize ``images:``, which cannot update it, so it would name the wrong tag."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": part_of,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def restricted_container(*, name: str, image: str, uid: int, resources: dict, **fields: Any) -> k8s.Container:
    """A container meeting Pod Security "restricted", with a read-only root filesystem."""
    return k8s.Container(
        name=name,
        image=image,
        image_pull_policy="IfNotPresent",
        resources=k8s.ResourceRequirements(
            requests={k: k8s.Quantity.from_string(v) for k, v in resources["requests"].items()},
            limits={k: k8s.Quantity.from_string(v) for k, v in resources["limits"].items()},
        ),
        security_context=k8s.SecurityContext(
            allow_privilege_escalation=False,
            privileged=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            run_as_user=uid,
            run_as_group=uid,
            capabilities=k8s.Capabilities(drop=["ALL"]),
            seccomp_profile=k8s.SeccompProfile(type="RuntimeDefault"),
        ),
        **fields,
    )


def restricted_pod(*, containers: list[k8s.Container], uid: int, service_account: str, **fields: Any) -> k8s.PodSpec:
    """A pod spec meeting Pod Security "restricted", with no service-account token mounted."""
    return k8s.PodSpec(
        containers=containers,
        service_account_name=service_account,
        automount_service_account_token=False,
        enable_service_links=False,
        security_context=k8s.PodSecurityContext(
            run_as_non_root=True,
            run_as_user=uid,
            run_as_group=uid,
            fs_group=uid,
            fs_group_change_policy="OnRootMismatch",  # no recursive chown of the model store per run
            seccomp_profile=k8s.SeccompProfile(type="RuntimeDefault"),
        ),
        **fields,
    )
