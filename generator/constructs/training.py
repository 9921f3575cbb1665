"""TrainingJob: the training workload of one model, written with typed cdk8s constructs.

It renders the model-store PersistentVolumeClaim, a ServiceAccount, the training Job and,
when a schedule is set, a CronJob. The Job is an Argo CD Sync hook (deleted and re-created
before each sync), and the trainer exits at once when the pinned version is already
published, so a new model version re-runs training without the immutable-Job error and an
unrelated sync costs one short pod.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdk8s_plus_33 import k8s
from constructs import Construct

from generator.config import Image, Model, Training
from generator.constructs.common import (
    ARGOCD_KEEP,
    MODEL_MOUNT,
    TRAINER_UID,
    labels,
    restricted_container,
    restricted_pod,
    snake_case,
)
from generator.conventions import RELEASE_KEY, release_config_map_name

GPU_RESOURCE = "nvidia.com/gpu"
EXIT_BAD_INPUT = 2  # the trainer's exit code for bad data or arguments: retrying cannot help
#: Argo CD sync wave of the training hook and of what it needs (model store, ServiceAccount).
HOOK_WAVE = "-1"


@dataclass(frozen=True)
class TrainingJobProps:
    """What a TrainingJob needs: the model, the trainer image, how to run, who it belongs to."""

    model: Model
    image: Image
    training: Training
    part_of: str
    #: Create the model-store PVC here (False when another construct already owns it).
    create_model_store: bool = True
    #: A blue-green slot or canary track: renders only that variant's Job, which trains the
    #: version pinned in the variant's release ConfigMap; the shared objects come from the base.
    variant: str = ""


class TrainingJob(Construct):
    """Job (+ optional CronJob) that trains ``model`` into the model store, with its PVC and SA."""

    def __init__(self, scope: Construct, id: str, props: TrainingJobProps):
        super().__init__(scope, id)
        model, training = props.model, props.training
        self.service_account = f"{model.name}-train"
        self.labels = labels(name="trainer", instance=model.name, component="training", part_of=props.part_of)
        self.selector = {key: self.labels[key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}
        k8s.KubeJob(
            self,
            "job",
            metadata=k8s.ObjectMeta(
                name=self.service_account + (f"-{props.variant}" if props.variant else ""),
                labels=self.labels,
                annotations={
                    "argocd.argoproj.io/hook": "Sync",
                    "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation",
                    # After the release ConfigMap (-2), before the server rolls (0).
                    "argocd.argoproj.io/sync-wave": HOOK_WAVE,
                },
            ),
            spec=self._job_spec(props, release=release_config_map_name(model.name, props.variant)),
        )
        if props.variant:
            return
        if props.create_model_store:
            self._model_store(training)
        # The hook's wave, not the default 0: Argo CD waits for the hook to complete before
        # wave 0, and the API server rejects the Job's pods while their ServiceAccount is
        # missing (a sync that never finishes). Within a wave Argo CD applies by kind, so the
        # NetworkPolicy and the ServiceAccount exist before the Job and no pod runs unconfined.
        before_hook = {"argocd.argoproj.io/sync-wave": HOOK_WAVE}
        k8s.KubeServiceAccount(
            self,
            "service-account",
            metadata=k8s.ObjectMeta(name=self.service_account, labels=self.labels, annotations=before_hook),
            automount_service_account_token=False,
        )
        # Training reads and writes only its volume: no traffic in or out.
        k8s.KubeNetworkPolicy(
            self,
            "network-policy",
            metadata=k8s.ObjectMeta(name=self.service_account, labels=self.labels, annotations=before_hook),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=self.selector), policy_types=["Ingress", "Egress"]
            ),
        )
        if training.schedule:
            k8s.KubeCronJob(
                self,
                "cron-job",
                metadata=k8s.ObjectMeta(name=f"{model.name}-retrain", labels=self.labels),
                spec=k8s.CronJobSpec(
                    schedule=training.schedule,
                    concurrency_policy="Forbid",
                    successful_jobs_history_limit=1,
                    failed_jobs_history_limit=2,
                    job_template=k8s.JobTemplateSpec(
                        metadata=k8s.ObjectMeta(labels=self.labels), spec=self._job_spec(props, release=None)
                    ),
                ),
            )

    def _model_store(self, training: Training) -> None:
        storage = training.storage
        k8s.KubePersistentVolumeClaim(
            self,
            "model-store",
            metadata=k8s.ObjectMeta(
                name=storage.claim_name,
                labels={**self.labels, "app.kubernetes.io/component": "model-store"},
                # The hook's wave, not earlier: with a WaitForFirstConsumer storage class the claim
                # binds only once a pod uses it, and Argo CD waits for a wave to be healthy.
                annotations={**ARGOCD_KEEP, "argocd.argoproj.io/sync-wave": HOOK_WAVE},
            ),
            spec=k8s.PersistentVolumeClaimSpec(
                access_modes=list(storage.access_modes),
                storage_class_name=storage.storage_class,
                resources=k8s.VolumeResourceRequirements(requests={"storage": k8s.Quantity.from_string(storage.size)}),
            ),
        )

    def _job_spec(self, props: TrainingJobProps, *, release: str | None) -> k8s.JobSpec:
        """The Job body. With a release ConfigMap: train its pinned version unless present.
        Without (the scheduled retrain): publish the next version."""
        model, training = props.model, props.training
        env = [
            k8s.EnvVar(name="MODEL_ROOT", value=MODEL_MOUNT),
            k8s.EnvVar(name="MODEL_NAME", value=model.name),
            k8s.EnvVar(name="HOME", value="/tmp"),  # Keras writes its config under $HOME
        ]
        if training.dataset_path:
            env.append(k8s.EnvVar(name="TRAINING_DATA", value=f"{MODEL_MOUNT}/{training.dataset_path}"))
        if release:
            env += [
                k8s.EnvVar(
                    name="MODEL_VERSION",
                    value_from=k8s.EnvVarSource(
                        config_map_key_ref=k8s.ConfigMapKeySelector(name=release, key=RELEASE_KEY)
                    ),
                ),
                k8s.EnvVar(name="SKIP_EXISTING", value="true"),
            ]
        resources = training.resources.as_k8s()
        node_selector = dict(training.node_selector)
        if training.gpus:
            for section in ("requests", "limits"):
                resources[section][GPU_RESOURCE] = str(training.gpus)
        container = restricted_container(
            name="trainer",
            image=props.image.reference,
            command=["python", "-m", "services.training.train"],
            env=env,
            resources=resources,
            volume_mounts=[
                k8s.VolumeMount(name="model-store", mount_path=MODEL_MOUNT),
                k8s.VolumeMount(name="tmp", mount_path="/tmp"),
            ],
        )
        pod = restricted_pod(
            containers=[container],
            uid=TRAINER_UID,
            service_account=self.service_account,
            restart_policy="Never",
            node_selector=node_selector or None,
            tolerations=[k8s.Toleration(**{snake_case(k): v for k, v in t.items()}) for t in training.tolerations]
            or None,
            volumes=[
                k8s.Volume(
                    name="model-store",
                    persistent_volume_claim=k8s.PersistentVolumeClaimVolumeSource(
                        claim_name=training.storage.claim_name
                    ),
                ),
                k8s.Volume(name="tmp", empty_dir=k8s.EmptyDirVolumeSource(size_limit=k8s.Quantity.from_string("1Gi"))),
            ],
        )
        return k8s.JobSpec(
            backoff_limit=training.backoff_limit,
            active_deadline_seconds=training.active_deadline_seconds,
            ttl_seconds_after_finished=training.ttl_seconds_after_finished,
            pod_failure_policy=k8s.PodFailurePolicy(
                rules=[
                    k8s.PodFailurePolicyRule(
                        action="FailJob",
                        on_exit_codes=k8s.PodFailurePolicyOnExitCodesRequirement(
                            container_name="trainer", operator="In", values=[EXIT_BAD_INPUT]
                        ),
                    )
                ]
            ),
            template=k8s.PodTemplateSpec(metadata=k8s.ObjectMeta(labels=self.labels), spec=pod),
        )
