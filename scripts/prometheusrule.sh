#!/usr/bin/env bash
# Writes deploy/k8s/prometheusrule.yaml: the rule groups of
# deploy/prometheus/rules.yml as a PrometheusRule (prometheus-operator) for the
# Kubernetes manifests. A test fails when the two differ; run this after
# changing the rules.
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# Made by scripts/prometheusrule.sh from deploy/prometheus/rules.yml; do not edit by hand."
  echo "apiVersion: monitoring.coreos.com/v1"
  echo "kind: PrometheusRule"
  echo "metadata:"
  echo "  name: assetgw"
  echo "  labels:"
  echo "    app: assetgw"
  echo "spec:"
  grep -v '^#' deploy/prometheus/rules.yml | sed 's/^/  /; s/^  $//'
} > deploy/k8s/prometheusrule.yaml
