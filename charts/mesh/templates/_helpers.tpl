{{/*
Names are fixed, not release-prefixed: the binaries and the CLI agree on them
(see the shared design notes, "Names and numbers every part agrees on").
*/}}

{{/* The image of every mesh binary: repository:tag, the tag defaulting to appVersion. */}}
{{- define "mesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Labels on every object of the chart. */}}
{{- define "mesh.labels" -}}
app.kubernetes.io/name: mesh
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/part-of: mesh
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end -}}

{{/* What selects the control-plane pods (Deployment, Services, PDB, anti-affinity). */}}
{{- define "mesh.selectorLabels" -}}
app: mesh-control-plane
{{- end -}}

{{/* The DNS names of the control plane's Services, for the serving certificate. */}}
{{- define "mesh.xdsSans" -}}
{{- $ns := .Release.Namespace -}}
{{- printf "mesh-control-plane.%s.svc,mesh-control-plane.%s.svc.cluster.local,mesh-injector.%s.svc" $ns $ns $ns -}}
{{- end -}}

{{/* nativeSidecars as settings.yaml spells it: auto, true or false. */}}
{{- define "mesh.nativeSidecars" -}}
{{- $v := .Values.injector.nativeSidecars -}}
{{- if kindIs "bool" $v -}}
{{- ternary "true" "false" $v -}}
{{- else -}}
{{- $v -}}
{{- end -}}
{{- end -}}

{{/*
One Istio CRD with a structural schema that keeps spec and status as written: the control
plane reads and checks their fields itself. Arguments: a dict with group, kind, plural,
shortNames, categories, versions (served, first one is stored), columns, and root (the chart's
context for labels).
*/}}
{{- define "mesh.istioCRD" -}}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {{ printf "%s.%s" .plural .group }}
  annotations:
    helm.sh/resource-policy: keep
  labels:
    {{- include "mesh.labels" .root | nindent 4 }}
spec:
  group: {{ .group }}
  scope: Namespaced
  names:
    kind: {{ .kind }}
    listKind: {{ printf "%sList" .kind }}
    plural: {{ .plural }}
    singular: {{ lower .kind }}
    shortNames:
      {{- toYaml .shortNames | nindent 6 }}
    categories:
      {{- toYaml .categories | nindent 6 }}
  versions:
  {{- range $i, $version := .versions }}
    - name: {{ $version }}
      served: true
      storage: {{ eq $i 0 }}
      subresources:
        status: {}
      additionalPrinterColumns:
      {{- range $.columns }}
        - name: {{ .name }}
          type: {{ .type }}
          jsonPath: {{ .jsonPath }}
          {{- with .description }}
          description: {{ . | quote }}
          {{- end }}
      {{- end }}
        - name: Age
          type: date
          jsonPath: .metadata.creationTimestamp
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              x-kubernetes-preserve-unknown-fields: true
            status:
              type: object
              x-kubernetes-preserve-unknown-fields: true
  {{- end }}
{{- end -}}
