{{- define "mlpipeline.name" -}}{{ .Release.Name }}{{- end -}}
{{- define "mlpipeline.labels" -}}
app.kubernetes.io/name: mlpipeline-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "mlpipeline.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
