#!/bin/bash
# kubeaws: publishes a fresh bootstrap token (TTL 4h) to s3://kubeaws-dev-0123456789/join/token so that nodes launched
# later can join. Run hourly by kubeaws-token-refresh.timer on every control-plane member.
set -euo pipefail
ROOT="${KUBEAWS_ROOT:-}"
umask 077
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
kubeadm token create --ttl 4h --kubeconfig "$ROOT/etc/kubernetes/admin.conf" >"$tmp"
aws s3 cp --only-show-errors --region us-east-1 --sse AES256 "$tmp" s3://kubeaws-dev-0123456789/join/token
echo "kubeaws: join token refreshed"
