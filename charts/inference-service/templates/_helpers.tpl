{{/*
Named templates of the inference-service chart.
Naming: "shared" resources (Service, ServiceAccount, NetworkPolicy) are named by
"inference-service.fullname"; "workload" resources (Deployment, ConfigMap, HPA, PDB) by
"inference-service.workloadName", which adds "-<slot|track>" when one is set.
*/}}

{{/*
Chart name, or nameOverride. Used for app.kubernetes.io/name.
*/}}
{{- define "inference-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified name of the shared resources: fullnameOverride, else the release name, suffixed
with the chart name unless the release name already contains it. At most 63 characters (a
DNS-1123 label, as a Service name must be). Stable: no hashes.
*/}}
{{- define "inference-service.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
"chart-version", for the optional helm.sh/chart label.
*/}}
{{- define "inference-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The delivery variant: the slot (blue-green) or the track (canary), or "" for a plain release.
(Setting both is refused by inference-service.validateValues.)
*/}}
{{- define "inference-service.variant" -}}
{{- default .Values.track .Values.slot -}}
{{- end -}}

{{/*
The label key of the variant: "slot", "track" or "".
*/}}
{{- define "inference-service.variantKey" -}}
{{- if .Values.slot -}}slot{{- else if .Values.track -}}track{{- end -}}
{{- end -}}

{{/*
Name of the workload-scoped resources: fullname, plus "-<slot|track>" when set; the fullname part
is shortened so that the whole stays within 63 characters.
*/}}
{{- define "inference-service.workloadName" -}}
{{- $fullname := include "inference-service.fullname" . -}}
{{- $variant := include "inference-service.variant" . -}}
{{- if $variant -}}
{{- printf "%s-%s" ($fullname | trunc (int (sub 62 (len $variant))) | trimSuffix "-") $variant -}}
{{- else -}}
{{- $fullname -}}
{{- end -}}
{{- end -}}

{{/*
Where the model image (model.artifact.image) is mounted; its files are under model/ in it.
*/}}
{{- define "inference-service.modelImageMount" -}}
/model-image
{{- end -}}

{{/*
Image reference: repository@digest when a digest is set (it wins over the tag), else
repository:tag. (A missing or "latest" tag is refused by inference-service.validateValues.)
*/}}
{{- define "inference-service.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (toString .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Value of app.kubernetes.io/version: the image tag, else the short form of the digest
("sha256-" and 12 hex digits). Made a valid label value (at most 63 characters, alphanumeric at
both ends). Empty when there is neither.
*/}}
{{- define "inference-service.version" -}}
{{- $version := "" -}}
{{- if .Values.image.tag -}}
{{- $version = toString .Values.image.tag -}}
{{- else if .Values.image.digest -}}
{{- $version = .Values.image.digest | replace ":" "-" | trunc 19 -}}
{{- end -}}
{{- $version = regexReplaceAll "^[^A-Za-z0-9]+" ($version | trunc 63) "" -}}
{{- regexReplaceAll "[^A-Za-z0-9]+$" $version "" -}}
{{- end -}}

{{/*
Selector labels shared by every slot/track of a release: what the Service and the NetworkPolicy
select. Never the version.
*/}}
{{- define "inference-service.sharedSelectorLabels" -}}
app.kubernetes.io/name: {{ include "inference-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Selector labels of this release's Deployment: the shared ones plus the plain `slot` or `track`
label when set. Immutable for the life of the Deployment, so never the version.
*/}}
{{- define "inference-service.selectorLabels" -}}
{{ include "inference-service.sharedSelectorLabels" . }}
{{- $variantKey := include "inference-service.variantKey" . }}
{{- if $variantKey }}
{{ $variantKey }}: {{ include "inference-service.variant" . }}
{{- end -}}
{{- end -}}

{{/*
Labels of the shared resources (Service, ServiceAccount, NetworkPolicy), sorted by key.
commonLabels cannot override the standard labels.
*/}}
{{- define "inference-service.labels" -}}
{{- $labels := dict
  "app.kubernetes.io/name" (include "inference-service.name" .)
  "app.kubernetes.io/instance" .Release.Name
  "app.kubernetes.io/component" "server"
  "app.kubernetes.io/managed-by" (default .Release.Service .Values.managedBy)
-}}
{{- if .Values.versionLabel -}}
{{- with (include "inference-service.version" .) -}}
{{- $_ := set $labels "app.kubernetes.io/version" . -}}
{{- end -}}
{{- end -}}
{{- with .Values.partOf -}}
{{- $_ := set $labels "app.kubernetes.io/part-of" . -}}
{{- end -}}
{{- if .Values.chartLabel -}}
{{- $_ := set $labels "helm.sh/chart" (include "inference-service.chart" .) -}}
{{- end -}}
{{- toYaml (merge $labels (deepCopy .Values.commonLabels)) -}}
{{- end -}}

{{/*
Labels of the workload-scoped resources (Deployment, ConfigMap, HPA, PDB): the shared labels plus
the plain `slot` or `track` label.
*/}}
{{- define "inference-service.workloadLabels" -}}
{{- $labels := include "inference-service.labels" . | fromYaml -}}
{{- $variantKey := include "inference-service.variantKey" . -}}
{{- if $variantKey -}}
{{- $_ := set $labels $variantKey (include "inference-service.variant" .) -}}
{{- end -}}
{{- toYaml $labels -}}
{{- end -}}

{{/*
Pod template labels: the workload labels plus podLabels, which cannot override them.
*/}}
{{- define "inference-service.podLabels" -}}
{{- $labels := include "inference-service.workloadLabels" . | fromYaml -}}
{{- toYaml (merge $labels (deepCopy .Values.podLabels)) -}}
{{- end -}}

{{/*
Annotations: commonAnnotations merged with an extra map (the extra wins), as YAML; "" when empty.
Usage: include "inference-service.annotations" (dict "context" $ "extra" .Values.service.annotations)
*/}}
{{- define "inference-service.annotations" -}}
{{- $annotations := merge (deepCopy (default (dict) .extra)) (deepCopy .context.Values.commonAnnotations) -}}
{{- if $annotations -}}
{{- toYaml $annotations -}}
{{- end -}}
{{- end -}}

{{/*
ServiceAccount the pods run as: the fullname (or serviceAccount.name) when the chart creates it,
else serviceAccount.name, else "default".
*/}}
{{- define "inference-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "inference-service.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Name of the server-settings ConfigMap: configMap.name, else the workload name (one per slot/track).
*/}}
{{- define "inference-service.configMapName" -}}
{{- default (include "inference-service.workloadName" .) .Values.configMap.name -}}
{{- end -}}

{{/*
ConfigMap data: the server settings as environment variables, sorted by name. The pod template
carries its sha256 as the checksum/config annotation, so a change rolls the pods.
MODEL_VERSION is deliberately absent: it is an explicit container env entry that overlays patch.
*/}}
{{- define "inference-service.configData" -}}
ACCESS_LOG: {{ ternary "true" "false" .Values.server.accessLog | quote }}
GRACEFUL_TIMEOUT: {{ .Values.server.gracefulTimeoutSeconds | int64 | quote }}
GRPC_KEEPALIVE_SECONDS: {{ .Values.server.grpc.keepaliveSeconds | int64 | quote }}
GRPC_KEEPALIVE_TIMEOUT_SECONDS: {{ .Values.server.grpc.keepaliveTimeoutSeconds | int64 | quote }}
GRPC_MAX_CONCURRENT_RPCS: {{ .Values.server.grpc.maxConcurrentRpcs | int64 | quote }}
GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS: {{ .Values.server.grpc.maxConnectionAgeGraceSeconds | int64 | quote }}
GRPC_MAX_CONNECTION_AGE_SECONDS: {{ .Values.server.grpc.maxConnectionAgeSeconds | int64 | quote }}
GRPC_PORT: {{ .Values.server.grpcPort | int64 | quote }}
GRPC_REFLECTION: {{ ternary "true" "false" .Values.server.grpc.reflection | quote }}
INTER_OP_THREADS: {{ .Values.server.interOpThreads | int64 | quote }}
INTRA_OP_THREADS: {{ .Values.server.intraOpThreads | int64 | quote }}
LOG_LEVEL: {{ .Values.server.logLevel | quote }}
MAX_BATCH_SIZE: {{ .Values.server.maxBatchSize | int64 | quote }}
MAX_BODY_BYTES: {{ .Values.server.maxBodyBytes | int64 | quote }}
METRICS_PORT: {{ .Values.server.metricsPort | int64 | quote }}
MODEL_BACKEND: {{ .Values.model.backend | quote }}
MODEL_BASE_PATH: {{ .Values.model.basePath | quote }}
{{- with .Values.model.classes }}
MODEL_CLASSES: {{ toJson . | quote }}
{{- end }}
{{- with .Values.model.inputShape }}
MODEL_INPUT_SHAPE: {{ toJson . | quote }}
{{- end }}
MODEL_NAME: {{ .Values.model.name | quote }}
MODEL_POLL_SECONDS: {{ .Values.model.pollSeconds | int64 | quote }}
PORT: {{ .Values.server.port | int64 | quote }}
THREADS: {{ .Values.server.threads | int64 | quote }}
WORKER_TIMEOUT: {{ .Values.server.workerTimeoutSeconds | int64 | quote }}
WORKERS: {{ .Values.server.workers | int64 | quote }}
{{- end -}}

{{/*
An HTTP probe on the port named http, or with "grpc" true Kubernetes' gRPC probe (grpc.health.v1)
on the gRPC port. Usage:
include "inference-service.httpProbe" (dict "path" "/v2/health/live" "probe" .Values.probes.liveness)
initialDelaySeconds 0 is the API's default and the API server does not store it: rendered, git
would say what the cluster never shows.
*/}}
{{- define "inference-service.httpProbe" -}}
{{- if .grpc -}}
grpc:
  port: {{ .grpcPort | int64 }}
{{- else -}}
httpGet:
  path: {{ .path }}
  port: http
  scheme: HTTP
{{- end }}
{{- with .probe.initialDelaySeconds }}
initialDelaySeconds: {{ . | int64 }}
{{- end }}
periodSeconds: {{ .probe.periodSeconds | int64 }}
timeoutSeconds: {{ .probe.timeoutSeconds | int64 }}
successThreshold: {{ .probe.successThreshold | default 1 | int64 }}
failureThreshold: {{ .probe.failureThreshold | int64 }}
{{- end -}}

{{/*
Cross-field checks the JSON schema cannot express. Every message starts with "inference-service:"
and names the values involved. Rendered by templates/validate.yaml.
*/}}
{{- define "inference-service.validateValues" -}}
{{- $errors := list -}}
{{- if and .Values.slot .Values.track -}}
{{- $errors = append $errors (printf "set either slot (blue-green) or track (canary), not both (slot=%q, track=%q)" .Values.slot .Values.track) -}}
{{- end -}}
{{- if not .Values.image.repository -}}
{{- $errors = append $errors "image.repository is required" -}}
{{- end -}}
{{- if and (not .Values.image.digest) (not .Values.image.tag) -}}
{{- $errors = append $errors "set image.tag or image.digest (sha256:...); the chart has no floating default" -}}
{{- else if and (not .Values.image.digest) (eq (toString .Values.image.tag) "latest") -}}
{{- $errors = append $errors "image.tag must not be \"latest\" (a mutable tag); pin a version or set image.digest" -}}
{{- end -}}
{{- if and .Values.model.artifact.image (not .Values.model.versionConfigMap) (eq (toString .Values.model.version) "") -}}
{{- $errors = append $errors "model.artifact.image holds one version: pin it with model.version or model.versionConfigMap" -}}
{{- end -}}
{{- if and .Values.model.artifact.image (eq .Values.model.artifact.delivery "initContainer") .Values.networkPolicy.enabled .Values.networkPolicy.denyEgress (not .Values.networkPolicy.egressTo) -}}
{{- $errors = append $errors "model.artifact.delivery initContainer pulls from the registry, but networkPolicy.denyEgress denies all egress: list the cluster DNS and the registry's port in networkPolicy.egressTo (or use imageVolume)" -}}
{{- end -}}
{{- if and .Values.model.artifact.image (eq .Values.model.artifact.delivery "imageVolume") (not (semverCompare ">=1.31-0" .Capabilities.KubeVersion.Version)) -}}
{{- $errors = append $errors (printf "model.artifact.delivery imageVolume needs Kubernetes 1.31 or newer (beta from 1.33); this is %s: use initContainer" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- $ports := list (int64 .Values.server.port) (int64 .Values.server.grpcPort) (int64 .Values.server.metricsPort) -}}
{{- if ne (len (uniq $ports)) 3 -}}
{{- $errors = append $errors (printf "server.port (%d), server.grpcPort (%d) and server.metricsPort (%d) must all differ" (int64 .Values.server.port) (int64 .Values.server.grpcPort) (int64 .Values.server.metricsPort)) -}}
{{- end -}}
{{- $preStop := 0 -}}
{{- if .Values.lifecycle.preStopSleepSeconds -}}{{- $preStop = int64 .Values.lifecycle.preStopSleepSeconds -}}{{- end -}}
{{- $drain := add (int64 .Values.server.gracefulTimeoutSeconds) $preStop -}}
{{- if le (int64 .Values.terminationGracePeriodSeconds) $drain -}}
{{- $errors = append $errors (printf "terminationGracePeriodSeconds (%d) must be greater than server.gracefulTimeoutSeconds (%d) + lifecycle.preStopSleepSeconds (%d), or the kubelet kills the server while it drains" (int64 .Values.terminationGracePeriodSeconds) (int64 .Values.server.gracefulTimeoutSeconds) $preStop) -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int64 .Values.autoscaling.minReplicas) (int64 .Values.autoscaling.maxReplicas)) -}}
{{- $errors = append $errors (printf "autoscaling.minReplicas (%d) must be <= autoscaling.maxReplicas (%d)" (int64 .Values.autoscaling.minReplicas) (int64 .Values.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if $pdb.enabled -}}
{{- $hasMax := and (hasKey $pdb "maxUnavailable") (ne (toString $pdb.maxUnavailable) "") (ne (toString $pdb.maxUnavailable) "<nil>") -}}
{{- $hasMin := and (hasKey $pdb "minAvailable") (ne (toString $pdb.minAvailable) "") (ne (toString $pdb.minAvailable) "<nil>") -}}
{{- if not (or $hasMax $hasMin) -}}
{{- $errors = append $errors "podDisruptionBudget: set maxUnavailable or minAvailable, or disable it with podDisruptionBudget.enabled=false" -}}
{{- end -}}
{{- end -}}
{{- if $errors -}}
{{- fail (printf "\n\ninference-service: invalid values:\n  - %s\n" (join "\n  - " $errors)) -}}
{{- end -}}
{{- end -}}
