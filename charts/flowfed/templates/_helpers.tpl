{{/* Full name of the release's objects. */}}
{{- define "flowfed.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "flowfed.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels selecting the operator pods. */}}
{{- define "flowfed.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "flowfed.serviceAccountName" -}}
{{- default (include "flowfed.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "flowfed.secretNamespace" -}}
{{- default .Release.Namespace .Values.memberClusters.secretNamespace -}}
{{- end -}}

{{/*
The Secret holding the ledger's signing key.
*/}}
{{- define "flowfed.ledgerKeySecret" -}}
{{- .Values.ledger.existingSecret | default (printf "%s-ledger-key" (include "flowfed.fullname" .)) -}}
{{- end }}
