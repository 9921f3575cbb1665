"""Training of one model, written with typed cdk8s constructs: the model store and the
training component.

``ModelStore`` is the PersistentVolumeClaim of an environment that trains (its training component
renders it): the Jobs publish into it and its servers read it; serve-only environments have none
(their servers pull model images). ``TrainingJob`` is what an environment that trains adds (a
Kustomize Component per strategy): one training Job per release ConfigMap of that strategy (the
rolling server's one, or each blue-green slot's or canary track's), their ServiceAccount and
NetworkPolicy and, when a schedule is set, a CronJob. Each Job is an Argo CD Sync hook (deleted
and re-created before each sync); the trainer fetches a pinned version from its model image
rather than retraining it, and exits at once when the pinned version is already published, so a
new model version re-runs training without the immutable-Job error and an unrelated sync costs
one short pod.

With ``training.workers`` > 1 each Job (and the CronJob's) is an Indexed Job of N pods that
train together on TensorFlow's MultiWorkerMirroredStrategy: ``completions`` = ``parallelism``
= N, every index retried on its own (``backoffLimitPerIndex``) and the Job failed as soon as one
index gives up; the Job succeeds when the chief (index 0) has published. Its pods get the
stable hostnames ``<job>-<index>.<job>-workers`` from a headless Service of their own
(``publishNotReadyAddresses``, so peers resolve before they are Ready), and a NetworkPolicy
admits the worker port between this Job's pods only (plus DNS). The trainer builds
``TF_CONFIG`` from ``JOB_COMPLETION_INDEX`` and those names.

The trainer is told its own image (``TRAINER_IMAGE``, recorded with the model it trains):
the training component's Kustomize configuration (``trainer_image_fields``) lets the overlay's
``images:`` pin rewrite that value together with the container's image.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdk8s_plus_33 import k8s
from constructs import Construct

from generator.config import ClusterDNS, Image, Model, ModelArtifacts, Storage, Training
from generator.conventions import RELEASE_KEY, UNPINNED_DIGEST, model_image_name, release_config_map_name
from generator.synthesis.common import (
    ARGOCD_KEEP,
    MODEL_MOUNT,
    dns_egress,
    labels,
    registry_egress,
    restricted_container,
    restricted_pod,
    trainer_uid,
)
from services.contract import MODEL_IMAGE_ENV, TRAINING_WORKER_PORT

GPU_RESOURCE = "nvidia.com/gpu"
EXIT_BAD_INPUT = 2  # the trainer's exit code for bad data or arguments: retrying cannot help
#: Argo CD sync wave of the training hook and of what it needs (model store, ServiceAccount).
HOOK_WAVE = "-1"
#: Where the trainer reads the registry credentials it pushes with (modelArtifacts.pushSecret).
PUSH_SECRET_MOUNT = "/var/run/secrets/model-registry"
EXIT_QUALITY_GATE = 3  # same data and seed give the same accuracy: retrying cannot help either
#: The port each distributed worker listens on.
WORKER_PORT = TRAINING_WORKER_PORT
#: The pod label that tells one distributed Job's pods from every other pod (its value: the Job's
#: name, or the CronJob's for the Jobs it creates); the headless Service and NetworkPolicy select it.
WORKER_GROUP_LABEL = "training.gitops/job"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def worker_service_name(job: str) -> str:
    """The headless Service (and NetworkPolicy) of a distributed Job: the pods' subdomain."""
    return f"{job}-workers"


def trainer_image_fields() -> dict:
    """Kustomize image field specs that make an overlay's ``images:`` pin rewrite the trainer's
    ``TRAINER_IMAGE`` env value too, so the image a model records is the one that trained it.
    (Only values naming a pinned image change; other env values are left alone.)"""
    return {
        "images": [
            {"path": "spec/template/spec/containers[]/env[]/value", "kind": "Job"},
            {"path": "spec/jobTemplate/spec/template/spec/containers[]/env[]/value", "kind": "CronJob"},
        ]
    }


def trainer_labels(model: Model, part_of: str) -> dict[str, str]:
    """The labels of every training object of ``model``."""
    return labels(name="trainer", instance=model.name, component="training", part_of=part_of)


class ModelStore(Construct):
    """The model store's PersistentVolumeClaim, in environments that train: the training Job
    writes it and their servers read it (serve-only environments pull model images instead)."""

    def __init__(self, scope: Construct, id: str, *, model: Model, storage: Storage, part_of: str):
        super().__init__(scope, id)
        k8s.KubePersistentVolumeClaim(
            self,
            "model-store",
            metadata=k8s.ObjectMeta(
                name=storage.claim_name,
                labels={**trainer_labels(model, part_of), "app.kubernetes.io/component": "model-store"},
                # The wave of its first consumer, the training hook's, never earlier: with a
                # WaitForFirstConsumer storage class the claim binds only once a pod uses it, and
                # Argo CD waits for a wave to be healthy.
                annotations={**ARGOCD_KEEP, "argocd.argoproj.io/sync-wave": str(HOOK_WAVE)},
            ),
            spec=k8s.PersistentVolumeClaimSpec(
                access_modes=list(storage.access_modes),
                storage_class_name=storage.storage_class,
                resources=k8s.VolumeResourceRequirements(requests={"storage": k8s.Quantity.from_string(storage.size)}),
            ),
        )


@dataclass(frozen=True)
class TrainingJobProps:
    """What a TrainingJob needs: the model, the trainer image, how to run, who it belongs to."""

    model: Model
    image: Image
    training: Training
    part_of: str
    #: Where the cluster DNS runs (platform.yaml ``cluster.dns``): workers resolve each other, and
    #: a Job that pushes its model image resolves the registry.
    cluster_dns: ClusterDNS
    #: One Job per entry, each training the version its release ConfigMap pins: ``""`` for the
    #: rolling server's release, or a strategy's two variants (blue-green slots, canary tracks).
    variants: tuple[str, ...] = ("",)
    #: Where the trained version is pushed as its model image (platform.yaml modelArtifacts);
    #: None: not pushed, and the Job reaches nothing.
    artifacts: ModelArtifacts | None = None


def _egress_rule(rule: dict) -> k8s.NetworkPolicyEgressRule:
    """An egress rule as :mod:`generator.synthesis.common` spells it (ports, and peers selecting
    namespaces and pods), as the typed object cdk8s writes."""
    return k8s.NetworkPolicyEgressRule(
        ports=[
            k8s.NetworkPolicyPort(protocol=port["protocol"], port=k8s.IntOrString.from_number(port["port"]))
            for port in rule.get("ports", [])
        ]
        or None,
        to=[
            k8s.NetworkPolicyPeer(
                namespace_selector=k8s.LabelSelector(match_labels=peer["namespaceSelector"]["matchLabels"]),
                pod_selector=k8s.LabelSelector(match_labels=peer["podSelector"]["matchLabels"]),
            )
            for peer in rule.get("to", [])
        ]
        or None,
    )


class TrainingJob(Construct):
    """The training Jobs of ``model`` (one per released variant), their ServiceAccount and
    NetworkPolicy, and the optional CronJob: everything an environment that trains adds."""

    def __init__(self, scope: Construct, id: str, props: TrainingJobProps):
        super().__init__(scope, id)
        self._cluster_dns = props.cluster_dns
        self.service_account = f"{props.model.name}-train"
        self.labels = trainer_labels(props.model, props.part_of)
        self.selector = {key: self.labels[key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}
        for variant in props.variants:
            self._sync_hook_job(props, variant)
        self._service_account_and_policy(props)
        if props.training.schedule:
            self._retrain_cron_job(props, props.training.schedule)

    def _sync_hook_job(self, props: TrainingJobProps, variant: str) -> None:
        """The Sync-hook Job (and worker network) that makes ``variant``'s pinned version available."""
        model, training = props.model, props.training
        job_name = self.service_account + (f"-{variant}" if variant else "")
        group = job_name if training.workers > 1 else None
        job_id = f"job-{variant}" if variant else "job"
        k8s.KubeJob(
            self,
            job_id,
            metadata=k8s.ObjectMeta(
                name=job_name,
                labels=self.labels,
                annotations={
                    "argocd.argoproj.io/hook": "Sync",
                    "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation",
                    # After the release ConfigMap (-2), before the server rolls (0).
                    "argocd.argoproj.io/sync-wave": HOOK_WAVE,
                },
            ),
            spec=self._job_spec(
                props, release=release_config_map_name(model.name, variant), group=group, variant=variant
            ),
        )
        if group:
            self._worker_network(group, job_id)

    def _service_account_and_policy(self, props: TrainingJobProps) -> None:
        """The trainer's ServiceAccount and NetworkPolicy, early enough that no Job pod runs unconfined."""
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
        # Training reads and writes only its volume, and pushes its model image: nothing comes in,
        # and nothing goes out but DNS and the registry's port.
        egress = registry_egress(props.cluster_dns, props.artifacts) if props.artifacts is not None else []
        k8s.KubeNetworkPolicy(
            self,
            "network-policy",
            metadata=k8s.ObjectMeta(name=self.service_account, labels=self.labels, annotations=before_hook),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=self.selector),
                policy_types=["Ingress", "Egress"],
                egress=[_egress_rule(rule) for rule in egress] or None,
            ),
        )

    def _retrain_cron_job(self, props: TrainingJobProps, schedule: str) -> None:
        """The CronJob (and worker network) that retrains on ``schedule``, without a new release."""
        model, training = props.model, props.training
        retrain = f"{model.name}-retrain"
        retrain_group = retrain if training.workers > 1 else None
        if retrain_group:
            self._worker_network(retrain_group, "cron-job")
        k8s.KubeCronJob(
            self,
            "cron-job",
            metadata=k8s.ObjectMeta(name=retrain, labels=self.labels),
            spec=k8s.CronJobSpec(
                schedule=schedule,
                concurrency_policy="Forbid",
                successful_jobs_history_limit=1,
                failed_jobs_history_limit=2,
                job_template=k8s.JobTemplateSpec(
                    metadata=k8s.ObjectMeta(labels=self.labels),
                    spec=self._job_spec(props, release=None, group=retrain_group),
                ),
            ),
        )

    def _worker_network(self, group: str, id: str) -> None:
        """The headless Service that gives a distributed Job's pods their DNS names, and the
        NetworkPolicy that lets exactly those pods reach each other on the worker port."""
        name = worker_service_name(group)
        members = {WORKER_GROUP_LABEL: group}
        # Before the hook that needs them (-1): peers must resolve as soon as the pods start.
        annotations = {"argocd.argoproj.io/sync-wave": "-2"}
        k8s.KubeService(
            self,
            f"{id}-workers",
            metadata=k8s.ObjectMeta(name=name, labels=self.labels, annotations=annotations),
            spec=k8s.ServiceSpec(
                cluster_ip="None",
                publish_not_ready_addresses=True,  # workers find each other before they are Ready
                selector=members,
                ports=[
                    k8s.ServicePort(name="worker", port=WORKER_PORT, target_port=k8s.IntOrString.from_string("worker"))
                ],
            ),
        )
        peers = [k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels=members))]
        worker_port = [k8s.NetworkPolicyPort(protocol="TCP", port=k8s.IntOrString.from_number(WORKER_PORT))]
        k8s.KubeNetworkPolicy(
            self,
            f"{id}-workers-network-policy",
            metadata=k8s.ObjectMeta(name=name, labels=self.labels, annotations=annotations),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=members),
                policy_types=["Ingress", "Egress"],
                ingress=[k8s.NetworkPolicyIngressRule(from_=peers, ports=worker_port)],
                egress=[
                    k8s.NetworkPolicyEgressRule(to=peers, ports=worker_port),
                    _egress_rule(dns_egress(self._cluster_dns)),
                ],
            ),
        )

    def _job_spec(
        self, props: TrainingJobProps, *, release: str | None, group: str | None, variant: str = ""
    ) -> k8s.JobSpec:
        """The Job body. With a release ConfigMap: publish its pinned version unless present,
        fetched from its model image where the overlay pins one (a version is trained once),
        else trained. Without (the scheduled retrain): train the next version. With a worker
        ``group``: an Indexed Job of ``training.workers`` pods on that group's headless Service."""
        env = _trainer_env(props, release=release, group=group, variant=variant)
        pod = _trainer_pod(props, _trainer_container(props, env, group), self.service_account, group)
        members = {WORKER_GROUP_LABEL: group} if group else {}
        template = k8s.PodTemplateSpec(metadata=k8s.ObjectMeta(labels={**self.labels, **members}), spec=pod)
        if not group:
            return _single_pod_job_spec(props.training, template)
        return _indexed_job_spec(props.training, template)


def _trainer_env(props: TrainingJobProps, *, release: str | None, group: str | None, variant: str) -> list[k8s.EnvVar]:
    """The trainer's environment: what to train, where to publish it, and which version or peers."""
    model, training = props.model, props.training
    env = [
        k8s.EnvVar(name="MODEL_ROOT", value=MODEL_MOUNT),
        k8s.EnvVar(name="MODEL_NAME", value=model.name),
        k8s.EnvVar(name="HOME", value="/tmp"),  # Keras writes its config under $HOME
        # Recorded with the model; the overlay's images: pin rewrites it (trainer_image_fields).
        k8s.EnvVar(name="TRAINER_IMAGE", value=props.image.reference),
    ]
    if training.dataset_path:
        env.append(k8s.EnvVar(name="TRAINING_DATA", value=f"{MODEL_MOUNT}/{training.dataset_path}"))
    artifacts = props.artifacts
    if artifacts is not None:
        env.append(k8s.EnvVar(name="MODEL_ARTIFACT_REPOSITORY", value=f"{artifacts.repository}/{model.name}"))
        if artifacts.push_secret:
            env.append(k8s.EnvVar(name="REGISTRY_AUTH_FILE", value=f"{PUSH_SECRET_MOUNT}/.dockerconfigjson"))
    if release:
        env += _release_env(props, release, variant)
    if group:
        env += _worker_env(training, group)
    return env


def _release_env(props: TrainingJobProps, release: str, variant: str) -> list[k8s.EnvVar]:
    """The release's pinned version, skipped when published and fetched when pinned: trained once."""
    env = [
        k8s.EnvVar(
            name="MODEL_VERSION",
            value_from=k8s.EnvVarSource(config_map_key_ref=k8s.ConfigMapKeySelector(name=release, key=RELEASE_KEY)),
        ),
        k8s.EnvVar(name="SKIP_EXISTING", value="true"),
    ]
    if props.artifacts is not None:
        # The overlay's images: pin rewrites it (trainer_image_fields); unpinned: train.
        image = f"{model_image_name(props.model.name, variant)}@{UNPINNED_DIGEST}"
        env.append(k8s.EnvVar(name=MODEL_IMAGE_ENV, value=image))
    return env


def _worker_env(training: Training, group: str) -> list[k8s.EnvVar]:
    """What a distributed worker needs to find its peers and build ``TF_CONFIG``."""
    return [
        k8s.EnvVar(name="TRAINING_WORKERS", value=str(training.workers)),
        # With JOB_COMPLETION_INDEX (set by Kubernetes) the trainer builds TF_CONFIG from
        # the stable hostnames <job>-<index>.<service>:<port>.
        k8s.EnvVar(
            name="TRAINING_JOB_NAME",
            value_from=k8s.EnvVarSource(
                field_ref=k8s.ObjectFieldSelector(field_path=f"metadata.labels['{JOB_NAME_LABEL}']")
            ),
        ),
        k8s.EnvVar(name="TRAINING_WORKER_SERVICE", value=worker_service_name(group)),
        k8s.EnvVar(name="TRAINING_WORKER_PORT", value=str(WORKER_PORT)),
    ]


def _trainer_container(props: TrainingJobProps, env: list[k8s.EnvVar], group: str | None) -> k8s.Container:
    """The restricted trainer container: its GPUs, mounts and, when distributed, the peers' port."""
    training, artifacts = props.training, props.artifacts
    resources = training.resources.as_k8s()
    if training.gpus:
        for section in ("requests", "limits"):
            resources[section][GPU_RESOURCE] = str(training.gpus)
    return restricted_container(
        name="trainer",
        image=props.image.reference,
        command=["python", "-m", "services.training.train"],
        env=env,
        resources=resources,
        volume_mounts=[
            k8s.VolumeMount(name="model-store", mount_path=MODEL_MOUNT),
            k8s.VolumeMount(name="tmp", mount_path="/tmp"),
            *(
                [k8s.VolumeMount(name="registry-auth", mount_path=PUSH_SECRET_MOUNT, read_only=True)]
                if artifacts is not None and artifacts.push_secret
                else []
            ),
        ],
        **({"ports": [k8s.ContainerPort(name="worker", container_port=WORKER_PORT)]} if group else {}),
    )


def _trainer_pod(
    props: TrainingJobProps, container: k8s.Container, service_account: str, group: str | None
) -> k8s.PodSpec:
    """The restricted trainer pod: run once, on the training nodes, placed among its workers."""
    training = props.training
    node_selector = dict(training.node_selector)
    return restricted_pod(
        containers=[container],
        uid=trainer_uid(),
        service_account=service_account,
        restart_policy="Never",
        node_selector=node_selector or None,
        tolerations=[k8s.Toleration(**t.model_dump(exclude_none=True)) for t in training.tolerations] or None,
        volumes=_trainer_volumes(props),
        **(_worker_placement(group) if group else {}),
    )


def _trainer_volumes(props: TrainingJobProps) -> list[k8s.Volume]:
    """The model store it publishes into, /tmp (the root is read-only) and the push credentials."""
    artifacts = props.artifacts
    return [
        k8s.Volume(
            name="model-store",
            persistent_volume_claim=k8s.PersistentVolumeClaimVolumeSource(claim_name=props.training.storage.claim_name),
        ),
        k8s.Volume(name="tmp", empty_dir=k8s.EmptyDirVolumeSource(size_limit=k8s.Quantity.from_string("1Gi"))),
        *(
            [
                k8s.Volume(
                    name="registry-auth",
                    secret=k8s.SecretVolumeSource(
                        secret_name=artifacts.push_secret,
                        items=[k8s.KeyToPath(key=".dockerconfigjson", path=".dockerconfigjson")],
                    ),
                )
            ]
            if artifacts is not None and artifacts.push_secret
            else []
        ),
    ]


def _worker_placement(group: str) -> dict:
    """A worker's pod fields: the subdomain of its stable hostname, and a spread over the nodes."""
    return {
        "subdomain": worker_service_name(group),
        # Prefer one worker per node (a soft rule: a small cluster still schedules them all).
        "topology_spread_constraints": [
            k8s.TopologySpreadConstraint(
                max_skew=1,
                topology_key="kubernetes.io/hostname",
                when_unsatisfiable="ScheduleAnyway",
                label_selector=k8s.LabelSelector(match_labels={WORKER_GROUP_LABEL: group}),
            )
        ],
    }


def _single_pod_job_spec(training: Training, template: k8s.PodTemplateSpec) -> k8s.JobSpec:
    """A one-pod Job, retried up to ``backoffLimit`` unless the input is bad (retrying cannot help)."""
    return k8s.JobSpec(
        backoff_limit=training.backoff_limit,
        active_deadline_seconds=training.active_deadline_seconds,
        ttl_seconds_after_finished=training.ttl_seconds_after_finished,
        pod_failure_policy=_fail_job_on(EXIT_BAD_INPUT),
        template=template,
    )


def _indexed_job_spec(training: Training, template: k8s.PodTemplateSpec) -> k8s.JobSpec:
    """An Indexed Job of workers training together: done once the chief publishes, failed if one quits."""
    return k8s.JobSpec(
        completion_mode="Indexed",
        completions=training.workers,
        parallelism=training.workers,  # every worker at once: each waits for all the others
        # backoffLimit retries per worker; one worker giving up fails the Job at once.
        backoff_limit_per_index=training.backoff_limit,
        max_failed_indexes=0,
        # The chief (index 0) publishes; once it has, the Job is done.
        success_policy=k8s.SuccessPolicy(rules=[k8s.SuccessPolicyRule(succeeded_indexes="0")]),
        active_deadline_seconds=training.active_deadline_seconds,
        ttl_seconds_after_finished=training.ttl_seconds_after_finished,
        # A retried chief would wait for workers that already finished: fail on a gate miss too.
        pod_failure_policy=_fail_job_on(EXIT_BAD_INPUT, EXIT_QUALITY_GATE),
        template=template,
    )


def _fail_job_on(*codes: int) -> k8s.PodFailurePolicy:
    """Fail the whole Job (no retry) when the trainer exits with one of ``codes``."""
    return k8s.PodFailurePolicy(
        rules=[
            k8s.PodFailurePolicyRule(
                action="FailJob",
                on_exit_codes=k8s.PodFailurePolicyOnExitCodesRequirement(
                    container_name="trainer", operator="In", values=list(codes)
                ),
            )
        ]
    )
