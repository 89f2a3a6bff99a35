{{/* Names. */}}
{{- define "vitalgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vitalgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vitalgate.ttp" -}}{{ include "vitalgate.fullname" . | trunc 59 | trimSuffix "-" }}-ttp{{- end }}
{{- define "vitalgate.hsp" -}}{{ include "vitalgate.fullname" . | trunc 59 | trimSuffix "-" }}-hsp{{- end }}

{{- define "vitalgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "vitalgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component (ttp or hsp): pass (list $ "ttp"). */}}
{{- define "vitalgate.selector" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "vitalgate.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "vitalgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vitalgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image of a component: pass (list $ .Values.ttp.image). */}}
{{- define "vitalgate.image" -}}
{{- $ := index . 0 -}}
{{- $image := merge (deepCopy (index . 1)) $.Values.image -}}
{{- printf "%s:%s" $image.repository (default $.Chart.AppVersion $image.tag) }}
{{- end }}

{{/*
A secret's Secret name: the chart's own when the value is given inline,
else the existing one. Pass (list $ .Values.kek "kek").
*/}}
{{- define "vitalgate.secretName" -}}
{{- $ := index . 0 -}}
{{- $secret := index . 1 -}}
{{- if $secret.value -}}
{{ include "vitalgate.fullname" $ }}-{{ index . 2 }}
{{- else -}}
{{ $secret.existingSecret }}
{{- end -}}
{{- end }}

{{- define "vitalgate.secretKey" -}}
{{- $secret := index . 1 -}}
{{- if $secret.value -}}{{ index . 2 }}{{- else -}}{{ $secret.existingSecretKey }}{{- end -}}
{{- end }}

{{/* The database URL's Secret: pass (list $ .Values.database "database"). */}}
{{- define "vitalgate.databaseSecretName" -}}
{{- $ := index . 0 -}}
{{- $db := index . 1 -}}
{{- if $db.url -}}
{{ include "vitalgate.fullname" $ }}-{{ index . 2 }}
{{- else -}}
{{ $db.existingSecret }}
{{- end -}}
{{- end }}

{{- define "vitalgate.databaseSecretKey" -}}
{{- $db := index . 1 -}}
{{- if $db.url -}}url{{- else -}}{{ $db.existingSecretKey }}{{- end -}}
{{- end }}

{{- define "vitalgate.serviceCaSecretName" -}}
{{- if .Values.ttp.serviceCa.certificate -}}
{{ include "vitalgate.fullname" . }}-ttp-ca
{{- else -}}
{{ .Values.ttp.serviceCa.existingSecret }}
{{- end -}}
{{- end }}

{{/* The TTP's address inside the cluster, as the HSP reaches it. */}}
{{- define "vitalgate.ttpUrl" -}}
https://{{ include "vitalgate.ttp" . }}.{{ .Release.Namespace }}.svc:{{ .Values.ttp.port }}
{{- end }}

{{/* The names the TTP puts in the HSP's certificate: its Service's. */}}
{{- define "vitalgate.hspDnsNames" -}}
{{- $svc := include "vitalgate.hsp" . -}}
{{- $names := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) -}}
{{- concat $names .Values.hsp.dnsNames | toJson -}}
{{- end }}

{{/* Environment both services share: telemetry. */}}
{{- define "vitalgate.telemetryEnv" -}}
{{- if .Values.otlp.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.otlp.endpoint | quote }}
{{- if not (kindIs "invalid" .Values.otlp.sampleRatio) }}
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .Values.otlp.sampleRatio | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Probes on the operations listener. */}}
{{- define "vitalgate.probes" -}}
startupProbe:
  httpGet: {path: /livez, port: ops}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /livez, port: ops}
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: ops}
  periodSeconds: 5
  failureThreshold: 2
{{- end }}

{{/* Egress every service needs: DNS, its database, the collector. Pass (list $ hasDatabase). */}}
{{- define "vitalgate.egressCommon" -}}
{{- $ := index . 0 -}}
{{- $np := $.Values.networkPolicy -}}
{{- $database := index . 1 -}}
# Names of the TTP's and the database's hosts.
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- if $database }}
- ports:
    - {port: {{ $np.databasePort }}, protocol: TCP}
  {{- with $np.databaseCidr }}
  to:
    - ipBlock: {cidr: {{ . }}}
  {{- end }}
{{- end }}
{{- if $.Values.otlp.endpoint }}
- ports:
    - {port: {{ $np.otlpPort }}, protocol: TCP}
  {{- with $np.otlpCidr }}
  to:
    - ipBlock: {cidr: {{ . }}}
  {{- end }}
{{- end }}
{{- end }}

{{/*
The port the HSP reaches a delivery URL on (the SMS gateway, a webhook
receiver), for its egress: the URL's own, else 443 for https and 80 for
http; nothing for http:// to the pod's own loopback. Pass the URL.
*/}}
{{- define "vitalgate.urlPort" -}}
{{- $url := urlParse . -}}
{{- $host := regexReplaceAll ":[0-9]+$" $url.host "" -}}
{{- if not (has $host (list "127.0.0.1" "localhost" "[::1]")) -}}
{{- $port := trimPrefix ":" (regexFind ":[0-9]+$" $url.host) -}}
{{- if $port }}{{ $port }}{{ else if eq $url.scheme "https" }}443{{ else }}80{{ end -}}
{{- end -}}
{{- end }}

{{/*
The ports the HSP delivers alerts on, space-separated, each once: the mail
server's, the SMS gateway's and each webhook receiver's.
*/}}
{{- define "vitalgate.hspNotifyPorts" -}}
{{- $smtp := .Values.hsp.smtp | default dict -}}
{{- $sms := .Values.hsp.sms | default dict -}}
{{- $ports := list -}}
{{- if $smtp.host -}}
{{- $byTls := dict "starttls" 587 "implicit" 465 "none" 25 -}}
{{- $ports = append $ports (int (default (get $byTls (default "starttls" $smtp.tls)) $smtp.port)) -}}
{{- end -}}
{{- $urls := list -}}
{{- if $sms.url }}{{ $urls = append $urls $sms.url }}{{ end -}}
{{- range .Values.hsp.webhooks }}{{ $urls = append $urls .url }}{{ end -}}
{{- range $urls -}}
{{- $port := include "vitalgate.urlPort" . -}}
{{- if $port }}{{ $ports = append $ports (int $port) }}{{ end -}}
{{- end -}}
{{- $ports | uniq | join " " -}}
{{- end }}

{{/*
What hsp.toml names that the binary would refuse only at start, or never
refuse while paging nobody: refused here, naming the value.
*/}}
{{- define "vitalgate.hspConfigChecks" -}}
{{- $smtp := .Values.hsp.smtp | default dict -}}
{{- $sms := .Values.hsp.sms | default dict -}}
{{- $bundle := (.Values.hsp.trustBundle | default dict).configMap -}}
{{- $names := list -}}
{{- range .Values.hsp.webhooks -}}
{{- if has .name $names -}}
{{- fail (printf "hsp.webhooks: the name %q is given twice (names tell webhooks apart in the audit trail and name their volumes)" .name) -}}
{{- end -}}
{{- $names = append $names .name -}}
{{- if and (hasPrefix "https://" .url) (not .caSecret) (not $bundle) -}}
{{- fail (printf "hsp.webhooks %s: https needs certificate authorities to check the receiver against: its caSecret, or hsp.trustBundle (the image holds none)" .name) -}}
{{- end -}}
{{- end -}}
{{- if and $sms.url (hasPrefix "https://" $sms.url) (not $sms.caSecret) (not $bundle) -}}
{{- fail "hsp.sms: https needs certificate authorities to check the gateway against: hsp.sms.caSecret, or hsp.trustBundle (the image holds none)" -}}
{{- end -}}
{{- if and $smtp.host (ne (default "starttls" $smtp.tls) "none") (not $smtp.caSecret) (not $bundle) -}}
{{- fail (printf "hsp.smtp: tls %s needs certificate authorities to check the mail server against: hsp.smtp.caSecret, or hsp.trustBundle (the image holds none)" (default "starttls" $smtp.tls)) -}}
{{- end -}}
{{- with .Values.hsp.escalation -}}
{{- $contacts := .contacts | default dict -}}
{{- range .fallback -}}
{{- if not (hasKey $contacts .) -}}
{{- fail (printf "hsp.escalation.fallback: %s has no contact in hsp.escalation.contacts (the HSP refuses a fallback nobody can reach)" .) -}}
{{- end -}}
{{- end -}}
{{- range $name, $address := $contacts -}}
{{- if and (hasPrefix "mailto:" $address) (not $smtp.host) -}}
{{- fail (printf "hsp.escalation.contacts.%s: a mailto: contact needs the mail server, hsp.smtp.host" $name) -}}
{{- end -}}
{{- if and (hasPrefix "tel:" $address) (not $sms.url) -}}
{{- fail (printf "hsp.escalation.contacts.%s: a tel: contact needs the SMS gateway, hsp.sms.url" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}
