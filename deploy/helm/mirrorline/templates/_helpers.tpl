{{/* Name of the release's objects: <release>-mirrorline, or the release name when it already says mirrorline. */}}
{{- define "mirrorline.fullname" -}}
{{- if contains "mirrorline" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-mirrorline" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mirrorline.labels" -}}
app.kubernetes.io/name: mirrorline
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
mirrorline.dev/service: {{ .Values.service }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "replayer") */}}
{{- define "mirrorline.selectorLabels" -}}
app.kubernetes.io/name: mirrorline
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mirrorline.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "mirrorline.configName" -}}
{{- printf "%s-config" (include "mirrorline.fullname" .) -}}
{{- end -}}

{{- define "mirrorline.saslSecretName" -}}
{{- default (printf "%s-kafka-sasl" (include "mirrorline.fullname" .)) .Values.kafka.sasl.existingSecret -}}
{{- end -}}

{{- define "mirrorline.replayGroup" -}}
{{- printf "mirrorline-replay-%s" .Values.service -}}
{{- end -}}

{{/* Pod template metadata annotations: Prometheus scraping and a config checksum so pods restart when it changes.
Pods whose command reloads the mounted config file in place (proxy, sink, live replayer: pass "reloads" true) get
no checksum unless restartOnConfigChange is set, so changing the sample ratio does not restart the proxy in front
of production. */}}
{{- define "mirrorline.podAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- if or (not .reloads) .ctx.Values.restartOnConfigChange }}
checksum/config: {{ include (print .ctx.Template.BasePath "/configmap.yaml") .ctx | sha256sum }}
{{- end }}
{{- with .ctx.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every mirrorline pod. */}}
{{- define "mirrorline.podSpecCommon" -}}
serviceAccountName: {{ include "mirrorline.fullname" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{ toYaml . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
{{ toYaml . | indent 2 }}
{{- end }}
{{- end -}}

{{/* Volumes every mirrorline pod mounts: the config file and the Kafka secrets. */}}
{{- define "mirrorline.volumes" -}}
- name: config
  configMap:
    name: {{ include "mirrorline.configName" . }}
{{- if .Values.kafka.sasl.mechanism }}
- name: kafka-sasl
  secret:
    secretName: {{ include "mirrorline.saslSecretName" . }}
    defaultMode: 0440
    items:
      - key: {{ .Values.kafka.sasl.passwordKey }}
        path: {{ .Values.kafka.sasl.passwordKey }}
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.secretName }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "mirrorline.volumeMounts" -}}
- name: config
  mountPath: /etc/mirrorline/config
  readOnly: true
{{- if .Values.kafka.sasl.mechanism }}
- name: kafka-sasl
  mountPath: /etc/mirrorline/kafka-sasl
  readOnly: true
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.secretName }}
- name: kafka-tls
  mountPath: /etc/mirrorline/kafka-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* Environment of every mirrorline container. */}}
{{- define "mirrorline.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
# Static consumer group membership: a container restarted in the same pod
# (crash, OOM kill) takes its partitions back at once, without a rebalance.
- name: MIRRORLINE_INSTANCE_ID
  value: "$(POD_NAME)"
- name: GOMEMLIMIT
  valueFrom:
    resourceFieldRef:
      resource: limits.memory
      divisor: "1"
{{- end -}}

{{/* /healthz (liveness) and /readyz (readiness) on the metrics port named "metrics". */}}
{{- define "mirrorline.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  periodSeconds: 5
  failureThreshold: 3
startupProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 2
  failureThreshold: 30
{{- end -}}

{{/*
A complete mirrorline container:
(dict "ctx" $ "name" "redactor" "args" (list "redact") "ports" (list (dict ...)) "resources" ... "env" (list ...))
*/}}
{{- define "mirrorline.container" -}}
{{- $ctx := .ctx -}}
- name: {{ .name }}
  image: {{ include "mirrorline.image" $ctx }}
  imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
  args:
{{- range .args }}
    - {{ . | quote }}
{{- end }}
    - -c
    - /etc/mirrorline/config/config.yaml
    - --metrics-addr
    - {{ printf ":%v" (default $ctx.Values.metricsPort .metricsPort) | quote }}
{{- range .extraArgs }}
    - {{ . | quote }}
{{- end }}
  env:
{{ include "mirrorline.env" $ctx | indent 4 }}
{{- with .env }}
{{ toYaml . | indent 4 }}
{{- end }}
  ports:
    - name: metrics
      containerPort: {{ default $ctx.Values.metricsPort .metricsPort }}
      protocol: TCP
{{- range .ports }}
    - name: {{ .name }}
      containerPort: {{ .port }}
      protocol: TCP
{{- end }}
{{ include "mirrorline.probes" $ctx | indent 2 }}
  securityContext:
{{ toYaml (default $ctx.Values.securityContext .securityContext) | indent 4 }}
  resources:
{{ toYaml .resources | indent 4 }}
  volumeMounts:
{{ include "mirrorline.volumeMounts" $ctx | indent 4 }}
{{- with .volumeMounts }}
{{ toYaml . | indent 4 }}
{{- end }}
{{- end -}}

{{/* Hash key of the redactor's hash and fake actions. */}}
{{- define "mirrorline.hashKeyEnv" -}}
- name: MIRRORLINE_REDACT_HASH_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redactor.hashKey.existingSecret }}
      key: {{ .Values.redactor.hashKey.key }}
{{- end -}}
