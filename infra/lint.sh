#!/usr/bin/env bash
# Lints template.yaml the way AWS tooling will see it: cfn-lint, then SAM CLI's own validation
# with its linter. Any finding fails. Run by `make lint` and by `make test` (before the local
# stack starts). Needs the virtualenvs `make venv venv-sam` create; works offline.
set -euo pipefail
cd "$(dirname "$0")/.."

# A region is required by `sam validate`; resource availability is checked for it.
region="${AWS_REGION:-us-east-1}"
export SAM_CLI_TELEMETRY=0

echo "cfn-lint template.yaml (region $region)"
if ! findings=$(.venv/bin/cfn-lint --regions "$region" -- template.yaml 2>&1) || [ -n "$findings" ]; then
  echo "$findings" >&2
  echo "cfn-lint: findings above" >&2
  exit 1
fi

echo "sam validate --lint (region $region)"
if ! report=$(.venv-sam/bin/sam validate --lint --region "$region" --template-file template.yaml); then
  echo "$report" >&2
  echo "sam validate --lint: findings above" >&2
  exit 1
fi
echo "template: no findings"
