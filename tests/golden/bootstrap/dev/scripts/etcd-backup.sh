#!/bin/bash
# kubeaws: etcd snapshot of this control-plane member to s3://kubeaws-dev-0123456789/etcd-backups/member-<i>/<ts>.db,
# checked with etcdutl before upload, with its `etcdutl snapshot status` JSON (plus the member, the time and
# the cluster's Kubernetes version) next to it as <ts>.json; keeps the newest 48. Run every 30
# minutes by kubeaws-etcd-backup.timer, and on demand by `kubeaws etcd snapshot` (a Job on this member).
set -euo pipefail
ROOT="${KUBEAWS_ROOT:-}"
K8S_DIR="$ROOT/etc/kubernetes"
STATE_DIR="$ROOT/var/lib/kubeaws"
RUN_DIR="$ROOT/etc/kubeaws/run"
# ---- etcd client helpers (kubeaws/bootstrap/templates/etcd.sh.j2) ----
# Needs ROOT, K8S_DIR, STATE_DIR and RUN_DIR. etcdctl runs from the etcd image kubeadm runs (through
# containerd's ctr), so that it always matches the cluster's etcd version (the distribution's etcd-client is
# older: it knows neither learners nor etcdutl).
ETCD_MOUNT="$ROOT/var/lib/etcd"
ETCD_MANIFEST="$K8S_DIR/manifests/etcd.yaml"
# Paths inside the etcdctl container (the host's /etc/kubernetes/pki/etcd is mounted there read-only).
ETCDCTL_TLS=(--cacert /etc/kubernetes/pki/etcd/ca.crt --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt
  --key /etc/kubernetes/pki/etcd/healthcheck-client.key --command-timeout=5s)
ETCD_LOCAL=""
if [[ -s "$STATE_DIR/node-ip" ]]; then
  ETCD_LOCAL="https://$(cat "$STATE_DIR/node-ip"):2379"
fi
ETCD_IMAGE=""

# etcd_image: the image of this member's etcd static pod, or the one kubeadm would run (before it exists).
etcd_image() {
  if [[ -z "$ETCD_IMAGE" && -f "$ETCD_MANIFEST" ]]; then
    ETCD_IMAGE="$(awk '$1 == "image:" {print $2; exit}' "$ETCD_MANIFEST")"
  fi
  if [[ -z "$ETCD_IMAGE" ]]; then
    ETCD_IMAGE="$(kubeadm config images list --config "$RUN_DIR/init.yaml" | grep '/etcd:' | head -n 1)"
  fi
  [[ -n "$ETCD_IMAGE" ]] || return 1
  if [[ ! -e "$STATE_DIR/etcd-image-pulled" ]] || [[ "$(cat "$STATE_DIR/etcd-image-pulled")" != "$ETCD_IMAGE" ]]; then
    crictl pull "$ETCD_IMAGE" >/dev/null
    echo "$ETCD_IMAGE" >"$STATE_DIR/etcd-image-pulled"
  fi
}

# Host directories mounted into the tool container (type=bind,src=HOST,dst=CONTAINER,options=...).
ETCD_TOOL_MOUNTS=("type=bind,src=$K8S_DIR/pki/etcd,dst=/etc/kubernetes/pki/etcd,options=rbind:ro")

# etcd_tool BINARY ARGS...: etcdctl or etcdutl of the cluster's etcd version, in a throwaway container.
etcd_tool() {
  local mount mounts=()
  etcd_image || return 1
  for mount in "${ETCD_TOOL_MOUNTS[@]}"; do
    mounts+=(--mount "$mount")
  done
  ctr -n k8s.io run --rm --net-host "${mounts[@]}" "$ETCD_IMAGE" "kubeaws-etcd-tool-$$-$RANDOM" "$@"
}

# etcdctl_run ARGS...: etcdctl with this member's etcd client certificate.
etcdctl_run() { etcd_tool etcdctl "${ETCDCTL_TLS[@]}" "$@"; }

# etcd_members ENDPOINT: one line per member: "<hex id> <started|unstarted> <learner|voter> <name>".
etcd_members() {
  local out
  out="$(etcdctl_run --endpoints "$1" member list -w json)" || return 1
  python3 -c '
import json, sys
for m in json.loads(sys.argv[1]).get("members", []):
    name = m.get("name", "")
    print("%x %s %s %s" % (m["ID"], "started" if name else "unstarted",
                           "learner" if m.get("isLearner") else "voter", name))' "$out"
}

# etcd_member_id ENDPOINT: the hex ID of the member serving ENDPOINT.
etcd_member_id() {
  local out
  out="$(etcdctl_run --endpoints "$1" endpoint status -w json)" || return 1
  python3 -c 'import json, sys; print("%x" % json.loads(sys.argv[1])[0]["Status"]["header"]["member_id"])' "$out"
}

etcd_local_healthy() { etcdctl_run --endpoints "$ETCD_LOCAL" endpoint health >/dev/null 2>&1; }
# ---- end of etcd client helpers ----

member="$(cat "$STATE_DIR/member")"
prefix=s3://kubeaws-dev-0123456789/etcd-backups/member-"${member}/"
# On the etcd volume (room for a copy of the database), outside etcd's data directory.
dir="$ETCD_MOUNT/backup"
install -d -m 0700 "$dir"
# One snapshot at a time on this member (the timer and `kubeaws etcd snapshot` share the files below).
exec 9>"$dir/lock"
flock 9
ts="$(date -u +%Y%m%dT%H%M%SZ)"
snap="$dir/snapshot.db"
trap 'rm -f "$snap"' EXIT
ETCD_TOOL_MOUNTS+=("type=bind,src=$dir,dst=/backup,options=rbind:rw")
etcdctl_run --endpoints "$ETCD_LOCAL" snapshot save /backup/snapshot.db >/dev/null
etcd_tool etcdutl snapshot status /backup/snapshot.db -w json >"$dir/status.json"
# The Kubernetes version the cluster was last applied with, else the one this member booted with.
aws s3 cp --only-show-errors --region us-east-1 s3://kubeaws-dev-0123456789/cluster/cluster.json "$dir/cluster.json" ||
  cp "$ROOT/etc/kubeaws/cluster.json" "$dir/cluster.json" || echo '{}' >"$dir/cluster.json"
python3 -c '
import json, sys
status = json.load(open(sys.argv[1]))
version = json.load(open(sys.argv[2])).get("kubernetesVersion", "")
status.update(member=int(sys.argv[3]), time=sys.argv[4], kubernetesVersion=str(version))
print(json.dumps(status, sort_keys=True))' "$dir/status.json" "$dir/cluster.json" "$member" "$ts" >"$dir/meta.json"
aws s3 cp --only-show-errors --region us-east-1 --sse AES256 "$snap" "${prefix}${ts}.db"
aws s3 cp --only-show-errors --region us-east-1 --sse AES256 --content-type application/json "$dir/meta.json" \
  "${prefix}${ts}.json"
# Timestamps sort lexically: everything but the newest 48 goes, each with its status JSON.
aws s3 ls --region us-east-1 "$prefix" | awk '{print $4}' | sed -n 's/\.db$//p' | sort | head -n -48 |
  while read -r old; do
    aws s3 rm --only-show-errors --region us-east-1 "${prefix}${old}.db"
    aws s3 rm --only-show-errors --region us-east-1 "${prefix}${old}.json"
  done
echo "kubeaws: etcd snapshot ${prefix}${ts}.db ($(cat "$dir/meta.json")) uploaded"
