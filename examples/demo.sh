#!/usr/bin/env bash
# The whole kubeaws lifecycle on the local AWS emulator (moto), no AWS account needed:
# init, then for each example spec: plan, apply, status, re-plan (no changes), delete, status; then stop
# the emulator. Every AWS call goes to 127.0.0.1 (--local); nothing boots a real node.
#
# The demo runs its own emulator (its own KUBEAWS_HOME in a temporary directory, any free port) and stops
# only that one: an emulator you run (`kubeaws local start`) is neither used, reset nor stopped.
#
#   PATH="$PWD/.venv/bin:$PATH" bash examples/demo.sh            # dev.yaml, ha.yaml and eks.yaml
#   PATH="$PWD/.venv/bin:$PATH" bash examples/demo.sh examples/eks.yaml
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$#" -gt 0 ]; then
  specs=("$@")
else
  specs=(examples/dev.yaml examples/ha.yaml examples/eks.yaml)
fi

demo_home="$(mktemp -d "${TMPDIR:-/tmp}/kubeaws-demo.XXXXXX")"
export KUBEAWS_HOME="$demo_home" KUBEAWS_LOCAL_PORT=0
unset AWS_ENDPOINT_URL KUBEAWS_LOCAL

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi

banner() {
  printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"
}

fail() {
  printf 'demo failed: %s\n' "$*" >&2
  exit 1
}

cleanup() {
  kubeaws local stop >/dev/null 2>&1 || true  # the demo's own emulator (KUBEAWS_HOME is the demo's)
  rm -rf "$demo_home"
}
trap cleanup EXIT

command -v kubeaws >/dev/null || fail "kubeaws is not on PATH (see the first command of README.md)"

banner "kubeaws init --name demo --region us-east-1   (a starter spec; first lines)"
starter="$(kubeaws init --name demo --region us-east-1)"
head -n 20 <<<"$starter"
echo "... ($(wc -l <<<"$starter") lines; write it to a file with -o cluster.yaml)"

banner "kubeaws local start   (the demo's own emulator, on a free port)"
kubeaws local start

for spec in "${specs[@]}"; do
  banner "kubeaws plan -f $spec --local"
  kubeaws plan -f "$spec" --local

  banner "kubeaws apply -f $spec --local --yes"
  kubeaws apply -f "$spec" --local --yes

  banner "kubeaws status -f $spec --local"
  kubeaws status -f "$spec" --local

  banner "kubeaws plan -f $spec --local   (again: expect no changes)"
  replan="$(kubeaws plan -f "$spec" --local)"
  printf '%s\n' "$replan"
  grep -q "No changes" <<<"$replan" || fail "re-plan of $spec after apply is not empty"

  banner "kubeaws delete -f $spec --local --yes"
  kubeaws delete -f "$spec" --local --yes

  banner "kubeaws status -f $spec --local   (after delete: expect nothing)"
  after="$(kubeaws status -f "$spec" --local)"
  printf '%s\n' "$after"
  grep -q "No resources found" <<<"$after" || fail "resources of $spec left after delete"
done

banner "kubeaws local stop   (the demo's emulator only)"
kubeaws local stop
cleanup
trap - EXIT

banner "demo complete: ${specs[*]} planned, applied, verified in sync, and deleted on the local emulator"
