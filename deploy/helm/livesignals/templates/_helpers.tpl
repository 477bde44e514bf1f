{{- define "livesignals.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "livesignals.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "livesignals.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "livesignals.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "livesignals.engineSelector" -}}
app.kubernetes.io/name: {{ include "livesignals.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: engine
{{- end -}}

{{- define "livesignals.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "livesignals.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ default (include "livesignals.fullname" .) .Values.serviceAccount.name }}
{{- else -}}
{{ default "default" .Values.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{- define "livesignals.secretName" -}}
{{- include "livesignals.fullname" . }}-settings
{{- end -}}

{{/* The settings every LiveSignals container gets: Kafka, Redis (from a Secret), extra settings, the TOML file. */}}
{{- define "livesignals.env" -}}
- name: LIVESIGNALS_KAFKA_BOOTSTRAP
  value: {{ required "kafka.bootstrap is required (Kafka is external)" .Values.kafka.bootstrap | quote }}
- name: LIVESIGNALS_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret | default (include "livesignals.secretName" .) }}
      key: redis-url
- name: LIVESIGNALS_REDIS_CLUSTER
  value: {{ .Values.redis.cluster | quote }}
- name: LIVESIGNALS_METRICS_PORT
  value: {{ .Values.engine.metricsPort | quote }}
{{- if or .Values.settingsFile.content .Values.settingsFile.existingSecret }}
- name: LIVESIGNALS_CONFIG
  value: /etc/livesignals/livesignals.toml
{{- end }}
{{- range $name, $value := .Values.settings }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "livesignals.settingsVolume" -}}
{{- if or .Values.settingsFile.content .Values.settingsFile.existingSecret }}
- name: settings-file
  secret:
    secretName: {{ .Values.settingsFile.existingSecret | default (include "livesignals.secretName" .) }}
    items:
      - key: livesignals.toml
        path: livesignals.toml
{{- end }}
{{- end -}}

{{- define "livesignals.settingsMount" -}}
{{- if or .Values.settingsFile.content .Values.settingsFile.existingSecret }}
- name: settings-file
  mountPath: /etc/livesignals
  readOnly: true
{{- end }}
{{- end -}}
