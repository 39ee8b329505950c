#!/bin/bash
# kubeaws bootstrap of a control-plane member of cluster "prod-ha" (rendered by kubeaws).
# The member index comes from the instance tag kubeaws.io/control-plane-member; its etcd data lives on the
# EBS volume tagged kubeaws.io/etcd-member=<index>, which follows the member across instance replacements.
# Idempotent: finished steps leave markers under /var/lib/kubeaws and are skipped on a re-run.
set -euo pipefail
# ---- common part (kubeaws/bootstrap/templates/lib.sh.j2) ----
# Every path honours KUBEAWS_ROOT (empty on a real node) so that the script can run unprivileged in a sandbox.
ROOT="${KUBEAWS_ROOT:-}"
ROLE=control-plane
CLUSTER=prod-ha
BUCKET=kubeaws-prod-ha-0123456789
REGION=us-east-1
K8S_PATCH=1.31.13
PKG_BASE=https://pkgs.k8s.io/core:/stable:/v1.31/deb
PAUSE_IMAGE=registry.k8s.io/pause:3.10
IMAGE_MIRROR=''
AWSCLI_PIP=awscli==1.36.40
STATE_DIR="$ROOT/var/lib/kubeaws"
CONF_DIR="$ROOT/etc/kubeaws"
RUN_DIR="$ROOT/etc/kubeaws/run"
K8S_DIR="$ROOT/etc/kubernetes"
export K8S_DIR
LOG_FILE="$ROOT/var/log/kubeaws-bootstrap.log"
IMDS_URL="${KUBEAWS_IMDS_URL:-http://169.254.169.254}"
# Bounded waits: TRIES attempts SLEEP seconds apart (10 min) for what this instance's own boot produces;
# LONG_TRIES (30 min) for what another instance produces (the first member's init, the join token), which may
# still be installing packages from a slow mirror.
TRIES="${KUBEAWS_WAIT_TRIES:-60}"
LONG_TRIES="${KUBEAWS_WAIT_LONG_TRIES:-180}"
SLEEP="${KUBEAWS_WAIT_SLEEP:-10}"
LONG_SLEEP="${KUBEAWS_WAIT_LONG_SLEEP:-$SLEEP}"
# A failed boot is retried from the failed step (finished steps are skipped); after the last attempt the
# instance marks itself unhealthy so that its Auto Scaling group replaces it.
BOOT_ATTEMPTS="${KUBEAWS_BOOT_ATTEMPTS:-3}"
# apt waits for the lock that apt-daily / unattended-upgrades hold right after the first boot.
APT_GET=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 -y -q)
CURRENT_STEP="start"
INSTANCE_ID=""

mkdir -p "$STATE_DIR" "$RUN_DIR" "$(dirname "$LOG_FILE")"
chmod 700 "$RUN_DIR"
# Everything goes to the log file and to the console (cloud-init's output reaches the serial console).
exec > >(tee -a "$LOG_FILE") 2>&1
TEE_PID=$!

log() { printf '%s kubeaws[%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ROLE" "$*"; }
fail() {
  log "FAILED in step ${CURRENT_STEP}: $*"
  exit 1
}
on_exit() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    log "bootstrap FAILED (exit $rc) in step $(current_step); see $LOG_FILE"
  fi
  exec 1>&- 2>&-
  wait "$TEE_PID" 2>/dev/null || true
}
trap on_exit EXIT

current_step() { cat "$STATE_DIR/current-step" 2>/dev/null || echo "$CURRENT_STEP"; }

# step NAME FUNCTION: runs FUNCTION once; a marker under $STATE_DIR makes a re-run (retry, reboot) skip it.
step() {
  local name="$1"
  shift
  CURRENT_STEP="$name"
  echo "$name" >"$STATE_DIR/current-step"
  if [[ -e "$STATE_DIR/$name.done" ]]; then
    log "step $name: already done, skipping"
    return 0
  fi
  log "step $name: start"
  "$@"
  touch "$STATE_DIR/$name.done"
  log "step $name: done"
}

# retry_n TRIES PAUSE WHAT COMMAND...: bounded wait, TRIES attempts PAUSE seconds apart, then a clear failure.
retry_n() {
  local tries="$1" pause="$2" what="$3" i
  shift 3
  for ((i = 1; i <= tries; i++)); do
    if "$@"; then
      return 0
    fi
    log "waiting for ${what} (attempt ${i}/${tries})"
    sleep "$pause"
  done
  fail "gave up waiting for ${what} after ${tries} attempts ${pause}s apart"
}
retry() { retry_n "$TRIES" "$SLEEP" "$@"; }
retry_long() { retry_n "$LONG_TRIES" "$LONG_SLEEP" "$@"; }

IMDS_TOKEN=""
imds() {
  if [[ -z "$IMDS_TOKEN" ]]; then
    IMDS_TOKEN="$(curl -fsS -X PUT "$IMDS_URL/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 21600")"
  fi
  curl -fsS -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "$IMDS_URL/latest/meta-data/$1"
}

s3_get() { aws s3 cp --only-show-errors --region "$REGION" "s3://$BUCKET/$1" "$2"; }
s3_put() { aws s3 cp --only-show-errors --region "$REGION" --sse AES256 "$1" "s3://$BUCKET/$2"; }
s3_exists() { aws s3api head-object --region "$REGION" --bucket "$BUCKET" --key "$1" >/dev/null 2>&1; }
json_get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

prepare_host() {
  swapoff -a
  if [[ -f "$ROOT/etc/fstab" ]]; then
    sed -i '/\sswap\s/s/^\([^#]\)/#\1/' "$ROOT/etc/fstab"
  fi
  mkdir -p "$ROOT/etc/modules-load.d" "$ROOT/etc/sysctl.d"
  printf 'overlay\nbr_netfilter\n' >"$ROOT/etc/modules-load.d/kubeaws.conf"
  modprobe overlay
  modprobe br_netfilter
  # Networking for pods, plus the values the kubelet checks with protectKernelDefaults: true.
  cat >"$ROOT/etc/sysctl.d/90-kubeaws.conf" <<'SYSCTL'
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
vm.overcommit_memory = 1
vm.panic_on_oom = 0
kernel.panic = 10
kernel.panic_on_oops = 1
kernel.keys.root_maxkeys = 1000000
kernel.keys.root_maxbytes = 25000000
SYSCTL
  sysctl --system >/dev/null
}

install_awscli() {
  if command -v aws >/dev/null 2>&1; then
    return 0
  fi
  # Ubuntu 22.04 ships awscli as a deb; 24.04 does not: a pinned pip install in a venv then.
  if apt-cache show awscli >/dev/null 2>&1; then
    "${APT_GET[@]}" install awscli
  else
    "${APT_GET[@]}" install python3-venv
    python3 -m venv "$ROOT/opt/kubeaws/awscli"
    "$ROOT/opt/kubeaws/awscli/bin/pip" install -q "$AWSCLI_PIP"
    ln -sf "$ROOT/opt/kubeaws/awscli/bin/aws" "$ROOT/usr/local/bin/aws"
  fi
}

install_packages() {
  export DEBIAN_FRONTEND=noninteractive
  retry "apt-get update" "${APT_GET[@]}" update
  "${APT_GET[@]}" install apt-transport-https ca-certificates curl gpg containerd python3
  mkdir -p "$ROOT/etc/apt/keyrings" "$ROOT/etc/apt/sources.list.d"
  retry "$PKG_BASE/Release.key" curl -fsSL -o "$RUN_DIR/kubernetes-release.key" "$PKG_BASE/Release.key"
  gpg --batch --yes --dearmor -o "$ROOT/etc/apt/keyrings/kubernetes-apt-keyring.gpg" "$RUN_DIR/kubernetes-release.key"
  echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] $PKG_BASE/ /" \
    >"$ROOT/etc/apt/sources.list.d/kubernetes.list"
  retry "apt-get update" "${APT_GET[@]}" update
  # cri-tools (crictl) explicitly: the kubeadm package depends on it only before Kubernetes 1.32.
  "${APT_GET[@]}" install "kubelet=${K8S_PATCH}-*" "kubeadm=${K8S_PATCH}-*" "kubectl=${K8S_PATCH}-*" cri-tools
  apt-mark hold kubelet kubeadm kubectl
  install_awscli
}

configure_containerd() {
  mkdir -p "$ROOT/etc/containerd"
  containerd config default >"$ROOT/etc/containerd/config.toml"
  sed -i -e 's/SystemdCgroup = false/SystemdCgroup = true/' \
    -e "s#sandbox_image = .*#sandbox_image = \"${PAUSE_IMAGE}\"#" "$ROOT/etc/containerd/config.toml"
  if [[ -n "$IMAGE_MIRROR" ]]; then
    # Every public registry resolves through the mirror (hosts.toml per registry).
    sed -i 's#config_path = ""#config_path = "/etc/containerd/certs.d"#' "$ROOT/etc/containerd/config.toml"
    local registry host="${IMAGE_MIRROR%%/*}" path=""
    if [[ "$IMAGE_MIRROR" == */* ]]; then
      path="/${IMAGE_MIRROR#*/}"
    fi
    for registry in registry.k8s.io docker.io quay.io ghcr.io public.ecr.aws; do
      mkdir -p "$ROOT/etc/containerd/certs.d/$registry"
      printf '[host."https://%s/v2%s"]\n  capabilities = ["pull", "resolve"]\n  override_path = true\n' \
        "$host" "$path" >"$ROOT/etc/containerd/certs.d/$registry/hosts.toml"
    done
  fi
  systemctl enable containerd
  systemctl restart containerd
}

NODE_NAME=""
NODE_IP=""
AZ=""
identify_node() {
  NODE_NAME="$(imds local-hostname)"
  NODE_IP="$(imds local-ipv4)"
  INSTANCE_ID="$(imds instance-id)"
  AZ="$(imds placement/availability-zone)"
  echo "$INSTANCE_ID" >"$STATE_DIR/instance-id"
  echo "$NODE_IP" >"$STATE_DIR/node-ip"
  log "instance $INSTANCE_ID in $AZ: node $NODE_NAME ($NODE_IP)"
}

ENDPOINT=""
PORT=""
CA_HASH=""
fetch_cluster_info() {
  retry_long "s3://$BUCKET/cluster/cluster.json" s3_get cluster/cluster.json "$CONF_DIR/cluster.json"
  ENDPOINT="$(json_get "$CONF_DIR/cluster.json" endpoint)"
  PORT="$(json_get "$CONF_DIR/cluster.json" port)"
  CA_HASH="$(json_get "$CONF_DIR/cluster.json" caCertHash)"
  [[ "$CA_HASH" =~ ^sha256:[0-9a-f]{64}$ ]] || fail "cluster.json has no valid caCertHash: '$CA_HASH'"
  log "API endpoint $ENDPOINT:$PORT"
}

# render_config TEMPLATE OUT [TOKEN]: fills the placeholders of a kubeadm config (the token never leaves RUN_DIR).
render_config() {
  local token="${3:-}"
  (
    umask 077
    sed -e "s#@@ENDPOINT@@#${ENDPOINT}#g" -e "s#@@PORT@@#${PORT}#g" -e "s#@@CA_HASH@@#${CA_HASH}#g" \
      -e "s#@@NODE_NAME@@#${NODE_NAME}#g" -e "s#@@NODE_IP@@#${NODE_IP}#g" -e "s#@@TOKEN@@#${token}#g" \
      "$CONF_DIR/kubeadm/$1" >"$RUN_DIR/$2"
  )
  if grep -q '@@[A-Z_]*@@' "$RUN_DIR/$2"; then
    fail "placeholders left in $2: $(grep -o '@@[A-Z_]*@@' "$RUN_DIR/$2" | sort -u | tr '\n' ' ')"
  fi
}

# CIS 4.1.1 / 4.1.9: the kubelet's unit files (0644 from the packages) and its config file (0644 from kubeadm)
# readable by root only.
harden_kubelet_files() {
  local f
  for f in "$ROOT/usr/lib/systemd/system/kubelet.service" "$ROOT"/usr/lib/systemd/system/kubelet.service.d/*.conf \
    "$ROOT"/etc/systemd/system/kubelet.service.d/*.conf "$ROOT/var/lib/kubelet/config.yaml"; do
    if [[ -f "$f" ]]; then
      chmod 600 "$f"
    fi
  done
}

token_ready() { s3_exists join/token; }
JOIN_TOKEN=""
fetch_token() {
  retry_long "s3://$BUCKET/join/token (written by the control plane)" token_ready
  s3_get join/token "$RUN_DIR/token"
  JOIN_TOKEN="$(tr -d '[:space:]' <"$RUN_DIR/token")"
  [[ "$JOIN_TOKEN" =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] || fail "s3://$BUCKET/join/token is not a bootstrap token"
}

# mark_unhealthy REASON: the instance gave up; its Auto Scaling group replaces it (EC2 status checks alone
# would keep a node that never joined).
mark_unhealthy() {
  local id="${INSTANCE_ID:-}"
  [[ -n "$id" ]] || id="$(cat "$STATE_DIR/instance-id" 2>/dev/null || imds instance-id || true)"
  log "marking instance ${id:-?} unhealthy so that its Auto Scaling group replaces it: $1"
  if [[ -n "$id" ]]; then
    aws autoscaling set-instance-health --region "$REGION" --instance-id "$id" --health-status Unhealthy \
      --no-should-respect-grace-period || log "could not mark ${id} unhealthy"
  fi
}

# run_boot MAIN: runs MAIN (a function made of steps) up to BOOT_ATTEMPTS times; before a new attempt,
# recover_step (defined by the role's script) undoes what the failed step left half done.
run_boot() {
  local attempt rc=0 failed
  for ((attempt = 1; attempt <= BOOT_ATTEMPTS; attempt++)); do
    set +e
    (
      set -e
      "$@"
    )
    rc=$?
    set -e
    if [[ $rc -eq 0 ]]; then
      return 0
    fi
    failed="$(current_step)"
    log "attempt ${attempt}/${BOOT_ATTEMPTS} failed (exit $rc) in step ${failed}"
    if [[ $attempt -lt $BOOT_ATTEMPTS ]]; then
      recover_step "$failed"
      sleep "$SLEEP"
    fi
  done
  CURRENT_STEP="$failed"
  mark_unhealthy "bootstrap failed ${BOOT_ATTEMPTS} times, last in step ${failed}"
  return "$rc"
}
# ---- end of common part ----

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

# ---- etcd membership helpers (kubeaws/bootstrap/templates/etcd-members.sh.j2) ----
# Needs the common part, the etcd client helpers, MEMBER, CLUSTER and KUBECTL.
ETCD_DATA="$ETCD_MOUNT/data"
HEALTHY_PEER=""

# etcd_client_cert: the healthcheck client certificate (signed by the etcd CA from the state bucket), to talk
# to the other members before this one runs kubeadm join.
etcd_client_cert() {
  if [[ ! -s "$K8S_DIR/pki/etcd/healthcheck-client.crt" ]]; then
    kubeadm init phase certs etcd-healthcheck-client --config "$RUN_DIR/init.yaml"
  fi
}

# peer_ips: private addresses of the cluster's other running control-plane instances. Instances carry the
# Kubernetes cluster tag (propagated by their Auto Scaling group), not kubeaws' own identity tags.
peer_ips() {
  local ips
  ips="$(aws ec2 describe-instances --region "$REGION" \
    --filters "Name=tag:kubernetes.io/cluster/$CLUSTER,Values=owned" "Name=tag-key,Values=kubeaws.io/control-plane-member" \
    "Name=instance-state-name,Values=running" --query 'Reservations[].Instances[].PrivateIpAddress' --output text)" ||
    return 1
  local ip
  for ip in $ips; do
    if [[ "https://$ip:2379" != "$ETCD_LOCAL" ]]; then
      echo "$ip"
    fi
  done
}

# find_healthy_peer: HEALTHY_PEER = the client URL of another member that answers with quorum.
find_healthy_peer() {
  local ip
  for ip in $(peer_ips); do
    if etcdctl_run --endpoints "https://$ip:2379" endpoint health >/dev/null 2>&1; then
      HEALTHY_PEER="https://$ip:2379"
      return 0
    fi
  done
  return 1
}

# members_settled: at least MEMBER started voting members, and no learner or unstarted member (etcd admits
# one learner at a time: members join one after the other, in index order).
members_settled() {
  local list
  find_healthy_peer || return 1
  list="$(etcd_members "$HEALTHY_PEER")" || return 1
  if grep -qE ' (unstarted|learner) ' <<<"$list"; then
    return 1
  fi
  [[ "$(grep -c ' started voter ' <<<"$list")" -ge "$MEMBER" ]]
}

# wait_turn: wait (bounded) until the members before this one have joined; then join anyway (kubeadm retries
# adding a learner on its own).
wait_turn() {
  local i
  for ((i = 1; i <= LONG_TRIES; i++)); do
    if members_settled; then
      return 0
    fi
    log "waiting for the members before $MEMBER to join etcd (attempt ${i}/${LONG_TRIES})"
    sleep "$LONG_SLEEP"
  done
  log "members before $MEMBER did not all join in time: joining anyway"
}

# update_peer_url ENDPOINT ID: points etcd member ID at this instance's address (a no-op when it already does).
update_peer_url() {
  local current
  current="$(etcdctl_run --endpoints "$1" member list -w json | python3 -c '
import json, sys
want = int(sys.argv[1], 16)
print(" ".join(next((m.get("peerURLs", []) for m in json.load(sys.stdin).get("members", []) if m["ID"] == want), [])))' "$2")" ||
    return 1
  if [[ "$current" == "https://$(cat "$STATE_DIR/node-ip"):2380" ]]; then
    return 0
  fi
  log "etcd member $2: peer URL $current -> https://$(cat "$STATE_DIR/node-ip"):2380"
  etcdctl_run --endpoints "$1" member update "$2" --peer-urls="https://$(cat "$STATE_DIR/node-ip"):2380" >/dev/null
}

# record_member: which etcd member this volume holds (on the volume, and per index in the state bucket).
record_member() {
  local id
  ETCD_LOCAL="https://$(cat "$STATE_DIR/node-ip"):2379"
  retry "the local etcd member" etcd_local_healthy
  id="$(etcd_member_id "$ETCD_LOCAL")"
  echo "$id" >"$ETCD_MOUNT/kubeaws-member-id"
  echo "$NODE_NAME" >"$ETCD_MOUNT/kubeaws-member-name"
  echo "$id $NODE_NAME" >"$RUN_DIR/member-record"
  s3_put "$RUN_DIR/member-record" "etcd/members/member-$MEMBER"
  log "etcd member $id recorded for member $MEMBER"
}

# forget_node NAME: the Node of this member's previous instance, once it is replaced.
forget_node() {
  if [[ -n "$1" && "$1" != "$NODE_NAME" ]]; then
    retry "the API server" api_ready
    "${KUBECTL[@]}" delete node "$1" --ignore-not-found >/dev/null
    log "removed node $1 (previous instance of member $MEMBER)"
  fi
}
# ---- end of etcd membership helpers ----

MEMBERS=3
ETCD_DEVICE_NAME="/dev/xvdz"
PKI_FILES="ca.crt ca.key front-proxy-ca.crt front-proxy-ca.key etcd/ca.crt etcd/ca.key sa.key sa.pub"
KUBECTL=(kubectl --kubeconfig "$K8S_DIR/admin.conf")
MEMBER=""

find_member_index() {
  MEMBER="$(aws ec2 describe-instances --region "$REGION" --instance-ids "$INSTANCE_ID" \
    --query "Reservations[0].Instances[0].Tags[?Key=='kubeaws.io/control-plane-member'].Value | [0]" --output text)"
  [[ "$MEMBER" =~ ^[0-9]+$ ]] || return 1
  echo "$MEMBER" >"$STATE_DIR/member"
}

VOLUME_ID=""
# volume_state: "<state> <attached instance or None> <attachment state or None>" of VOLUME_ID, in one call.
volume_state() {
  aws ec2 describe-volumes --region "$REGION" --volume-ids "$VOLUME_ID" \
    --query 'Volumes[0].[State, Attachments[0].InstanceId, Attachments[0].State]' --output text
}
# (the AWS CLI's text output separates fields with tabs: `read` splits them)
volume_attached_here() {
  local state holder attachment
  read -r state holder attachment <<<"$(volume_state)"
  [[ "$holder" == "$INSTANCE_ID" && "$attachment" == "attached" ]]
}
volume_available() {
  local state rest
  read -r state rest <<<"$(volume_state)"
  [[ "$state" == "available" ]]
}
etcd_device() {
  local nvme="$ROOT/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${VOLUME_ID/-/}"
  if [[ -e "$nvme" ]]; then
    readlink -f "$nvme"
  elif [[ -e "$ROOT$ETCD_DEVICE_NAME" ]]; then
    echo "$ROOT$ETCD_DEVICE_NAME"
  else
    return 1
  fi
}
etcd_device_present() { etcd_device >/dev/null; }

attach_etcd_volume() {
  local found holder state
  found="$(aws ec2 describe-volumes --region "$REGION" --filters "Name=tag:kubeaws.io/cluster,Values=$CLUSTER" \
    "Name=tag:kubeaws.io/etcd-member,Values=$MEMBER" "Name=availability-zone,Values=$AZ" \
    --query 'Volumes[0].[VolumeId, Attachments[0].InstanceId]' --output text)"
  read -r VOLUME_ID holder <<<"$found"
  [[ "$VOLUME_ID" == vol-* ]] || fail "no etcd volume tagged kubeaws.io/etcd-member=$MEMBER in $AZ"
  echo "$VOLUME_ID" >"$STATE_DIR/etcd-volume"
  if [[ "$holder" != "None" && "$holder" != "$INSTANCE_ID" ]]; then
    state="$(aws ec2 describe-instances --region "$REGION" --instance-ids "$holder" \
      --query 'Reservations[0].Instances[0].State.Name' --output text 2>/dev/null || echo gone)"
    case "$state" in
      pending | running) fail "etcd volume $VOLUME_ID is still in use by live instance $holder ($state)" ;;
      *)
        log "etcd volume $VOLUME_ID held by dead instance $holder ($state): force-detaching"
        aws ec2 detach-volume --region "$REGION" --volume-id "$VOLUME_ID" --force >/dev/null
        ;;
    esac
  fi
  if [[ "$holder" != "$INSTANCE_ID" ]]; then
    retry "etcd volume $VOLUME_ID to be available" volume_available
    log "attaching etcd volume $VOLUME_ID"
    aws ec2 attach-volume --region "$REGION" --volume-id "$VOLUME_ID" --instance-id "$INSTANCE_ID" \
      --device "$ETCD_DEVICE_NAME" >/dev/null
  fi
  retry "etcd volume $VOLUME_ID to be attached" volume_attached_here
  retry "the block device of $VOLUME_ID" etcd_device_present
}

# The volume is mounted on /var/lib/etcd; etcd's data directory is /var/lib/etcd/data (0700), so that the
# filesystem's lost+found never sits in it (kubeadm's preflight wants an empty data directory).
mount_etcd_volume() {
  local dev uuid rc=0
  dev="$(etcd_device)"
  blkid -o value -s TYPE "$dev" >/dev/null || rc=$?
  if [[ $rc -eq 2 ]]; then
    log "etcd volume $VOLUME_ID ($dev) has no filesystem: formatting it"
    mkfs.ext4 -q -L etcd "$dev"
  elif [[ $rc -ne 0 ]]; then
    fail "blkid could not read $dev (exit $rc): refusing to format"
  else
    log "etcd volume $VOLUME_ID ($dev) already has a filesystem: keeping its data"
  fi
  uuid="$(blkid -o value -s UUID "$dev")"
  mkdir -p "$ETCD_MOUNT"
  if ! grep -q "UUID=$uuid" "$ROOT/etc/fstab" 2>/dev/null; then
    echo "UUID=$uuid /var/lib/etcd ext4 defaults,nofail 0 2" >>"$ROOT/etc/fstab"
  fi
  mountpoint -q "$ETCD_MOUNT" || mount /var/lib/etcd
  mountpoint -q "$ETCD_MOUNT" || fail "/var/lib/etcd is not mounted"
}

pki_complete() {
  local f
  for f in $PKI_FILES encryption-key; do
    [[ -s "$RUN_DIR/pki/$f" ]] || return 1
  done
}
fetch_pki() { aws s3 cp --only-show-errors --recursive --region "$REGION" "s3://$BUCKET/pki/" "$RUN_DIR/pki/"; }

# The cluster's CAs and keys (generated once by kubeaws, in the state bucket), in one download.
install_pki() {
  local f
  mkdir -p "$K8S_DIR/pki/etcd" "$K8S_DIR/encryption"
  (
    umask 077
    retry "s3://$BUCKET/pki/ (the cluster's CAs)" fetch_pki
  )
  pki_complete || fail "s3://$BUCKET/pki/ lacks some of: $PKI_FILES encryption-key"
  for f in $PKI_FILES; do
    mv "$RUN_DIR/pki/$f" "$K8S_DIR/pki/$f"
  done
  chmod 600 "$K8S_DIR"/pki/*.key "$K8S_DIR"/pki/etcd/*.key
  mv "$RUN_DIR/pki/encryption-key" "$RUN_DIR/encryption-key"
  (
    umask 077
    printf '%s\n' "apiVersion: apiserver.config.k8s.io/v1" "kind: EncryptionConfiguration" "resources:" \
      "  - resources: [secrets]" "    providers:" "      - aescbc:" "          keys:" "            - name: key1" \
      "              secret: $(tr -d '[:space:]' <"$RUN_DIR/encryption-key")" "      - identity: {}" \
      >"$K8S_DIR/encryption/config.yaml"
  )
  rm -f "$RUN_DIR/encryption-key"
}

api_ready() { "${KUBECTL[@]}" get --raw=/readyz >/dev/null 2>&1; }

publish_token() {
  local token
  token="$(kubeadm token create --ttl 4h --kubeconfig "$K8S_DIR/admin.conf")"
  (
    umask 077
    echo "$token" >"$RUN_DIR/token"
  )
  s3_put "$RUN_DIR/token" join/token
  rm -f "$RUN_DIR/token"
}

initialized() { s3_exists join/initialized; }

init_cluster() {
  render_config init.yaml init.yaml
  log "kubeadm init (first member of $CLUSTER)"
  touch "$STATE_DIR/kubeadm-ran"
  kubeadm init --config "$RUN_DIR/init.yaml" --skip-token-print
  record_member
}

# remove_previous_member: the member this index had before (its volume was lost or its data stale) is
# removed from etcd before this instance joins, the etcd way to replace a member (remove, then add).
PREVIOUS_NODE=""
remove_previous_member() {
  local previous=""
  if s3_exists "etcd/members/member-$MEMBER"; then
    s3_get "etcd/members/member-$MEMBER" "$RUN_DIR/previous-member"
    read -r previous PREVIOUS_NODE <"$RUN_DIR/previous-member"
  fi
  [[ -n "$previous" ]] || return 0
  if etcd_members "$HEALTHY_PEER" | awk -v id="$previous" '$1 == id {found = 1} END {exit !found}'; then
    log "removing etcd member $previous (member $MEMBER's previous incarnation) before joining"
    retry "the removal of etcd member $previous" remove_member "$HEALTHY_PEER" "$previous"
  fi
}

# remove_member ENDPOINT ID: gone already, or removed now. etcd refuses a removal ("unhealthy cluster") until the
# members that stay have all been connected for a few seconds (its strict reconfiguration check), which is the
# case just after a peer restarted: the caller retries.
remove_member() {
  etcd_members "$1" | awk -v id="$2" '$1 == id {found = 1} END {exit !found}' || return 0
  etcdctl_run --endpoints "$1" member remove "$2" >/dev/null
}

join_control_plane() {
  retry_long "s3://$BUCKET/join/initialized (the first member's kubeadm init)" initialized
  if [[ "$MEMBERS" == "1" ]]; then
    fail "the only member's etcd volume $VOLUME_ID holds no data but the cluster was initialized:" \
      "restore etcd from a snapshot (etcd-backups/ in the state bucket)"
  fi
  fetch_token
  render_config init.yaml init.yaml
  render_config join-control-plane.yaml join.yaml "$JOIN_TOKEN"
  etcd_client_cert
  wait_turn
  remove_previous_member
  log "kubeadm join --control-plane (member $MEMBER)"
  touch "$STATE_DIR/kubeadm-ran"
  kubeadm join --config "$RUN_DIR/join.yaml"
  rm -f "$RUN_DIR/join.yaml" "$RUN_DIR/token"
  record_member
  forget_node "$PREVIOUS_NODE"
}

# A single member restarted from its volume: the control plane is rebuilt around the existing etcd data
# (kubeadm's init phases without preflight and without a new etcd cluster), then the peer URL of the one
# member follows the new address.
restore_single() {
  local old_name="$1" id
  render_config init.yaml init.yaml
  kubeadm init phase certs all --config "$RUN_DIR/init.yaml"
  kubeadm init phase kubeconfig all --config "$RUN_DIR/init.yaml"
  kubeadm init phase etcd local --config "$RUN_DIR/init.yaml"
  kubeadm init phase control-plane all --config "$RUN_DIR/init.yaml"
  kubeadm init phase kubelet-start --config "$RUN_DIR/init.yaml"
  retry "the local etcd member" etcd_local_healthy
  id="$(etcd_member_id "$ETCD_LOCAL")"
  retry "etcd peer URL update of member $id" update_peer_url "$ETCD_LOCAL" "$id"
  retry "the API server" api_ready
  kubeadm init phase upload-config all --config "$RUN_DIR/init.yaml"
  kubeadm init phase mark-control-plane --config "$RUN_DIR/init.yaml"
  # kubelet.conf then points at the kubelet's rotating client certificate instead of a one-year one.
  kubeadm init phase kubelet-finalize all --config "$RUN_DIR/init.yaml"
  record_member
  forget_node "$old_name"
}

# A replaced member of several: its peer URL is moved to this instance through a healthy peer BEFORE its etcd
# starts from the data on the volume; it never becomes a new etcd member. Data of a member the cluster no
# longer has (removed while its instance was down) is stale: it is kept aside and the member joins afresh.
restore_member() {
  local old_id old_name
  old_id="$(cat "$ETCD_MOUNT/kubeaws-member-id" 2>/dev/null || true)"
  old_name="$(cat "$ETCD_MOUNT/kubeaws-member-name" 2>/dev/null || true)"
  log "etcd data found on $VOLUME_ID: restoring member $MEMBER (etcd member ${old_id:-?}, was ${old_name:-?})"
  if [[ "$MEMBERS" == "1" ]]; then
    restore_single "$old_name"
    return 0
  fi
  render_config init.yaml init.yaml
  etcd_client_cert
  retry_long "a healthy etcd peer (quorum of the other members)" find_healthy_peer
  if ! etcd_members "$HEALTHY_PEER" | awk -v id="$old_id" -v name="$old_name" \
    '($1 == id && id != "") || ($4 == name && name != "") {found = 1} END {exit !found}'; then
    local aside
    aside="$ETCD_MOUNT/data.stale-$(date -u +%Y%m%dT%H%M%SZ)"
    log "etcd member ${old_id:-$old_name} is no longer in the cluster: keeping its data aside in $aside, joining afresh"
    mv "$ETCD_DATA" "$aside"
    install -d -m 0700 "$ETCD_DATA"
    echo join >"$STATE_DIR/control-plane-mode"
    join_control_plane
    forget_node "$old_name"
    return 0
  fi
  [[ -n "$old_id" ]] || old_id="$(etcd_members "$HEALTHY_PEER" | awk -v name="$old_name" '$4 == name {print $1}')"
  fetch_token
  render_config join-control-plane.yaml join.yaml "$JOIN_TOKEN"
  kubeadm join phase control-plane-prepare all --config "$RUN_DIR/join.yaml"
  retry "etcd peer URL update of member $old_id" update_peer_url "$HEALTHY_PEER" "$old_id"
  kubeadm init phase etcd local --config "$RUN_DIR/init.yaml"
  kubeadm join phase kubelet-start --config "$RUN_DIR/join.yaml"
  retry "the local etcd member" etcd_local_healthy
  retry "the API server" api_ready
  kubeadm join phase control-plane-join mark-control-plane --config "$RUN_DIR/join.yaml"
  rm -f "$RUN_DIR/join.yaml" "$RUN_DIR/token"
  record_member
  forget_node "$old_name"
}

start_control_plane() {
  install -d -m 0700 "$ETCD_DATA"
  if [[ -d "$ETCD_DATA/member" ]]; then
    echo restore >"$STATE_DIR/control-plane-mode"
    restore_member
  elif [[ "$MEMBER" == "0" ]] && ! initialized; then
    echo init >"$STATE_DIR/control-plane-mode"
    init_cluster
  else
    echo join >"$STATE_DIR/control-plane-mode"
    join_control_plane
  fi
}

# A fresh bootstrap token for nodes (the timer refreshes it hourly), and on member 0 the marker that the
# cluster exists.
publish_cluster() {
  retry "the API server" api_ready
  publish_token
  if [[ "$MEMBER" == "0" ]] && ! initialized; then
    echo "$NODE_NAME $(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$RUN_DIR/initialized"
    s3_put "$RUN_DIR/initialized" join/initialized
  fi
}

# The approver of kubelet serving certificates (kubelets run with serverTLSBootstrap): every member runs one from
# its first minutes on, so that no kubelet waits for its certificate (`kubectl logs/exec` need it). It approves
# only the names and addresses of the EC2 instance the requesting node is (docs/security.md).
install_approver() {
  retry "s3://$BUCKET/"cluster/node/kubelet-serving-approver.py s3_get cluster/node/kubelet-serving-approver.py "$RUN_DIR/approver.py"
  install -m 0755 "$RUN_DIR/approver.py" "$ROOT"/usr/local/lib/kubeaws/kubelet-serving-approver.py
  rm -f "$RUN_DIR/approver.py"
  systemctl daemon-reload
  systemctl enable --now kubeaws-serving-approver.service
}

# The field manager kubeaws applies the same objects with, later, through the API: one owner of their fields.
kubectl_apply() {
  retry "kubectl apply -f $1" "${KUBECTL[@]}" apply --server-side --force-conflicts --field-manager=kubeaws -f "$1"
}

install_addons() {
  local name names=(cloud-provider-aws.yaml cni-cilium.yaml)
  retry "the API server" api_ready
  mkdir -p "$CONF_DIR/addons"
  retry "s3://$BUCKET/cluster/addons/" aws s3 cp --only-show-errors --recursive --region "$REGION" \
    "s3://$BUCKET/cluster/addons/" "$CONF_DIR/addons/"
  for name in "${names[@]}"; do
    [[ -s "$CONF_DIR/addons/$name" ]] || fail "s3://$BUCKET/cluster/addons/$name is missing"
  done
  kubectl_apply "$CONF_DIR/addons/cni-cilium.yaml"
  kubectl_apply "$CONF_DIR/addons/cloud-provider-aws.yaml"
}

adjust_taints() {
  log "control-plane taint kept (controlPlane.schedulable is false)"
}

install_timers() {
  systemctl daemon-reload
  systemctl enable --now kubeaws-token-refresh.timer
  systemctl enable --now kubeaws-etcd-backup.timer
  systemctl enable --now kubeaws-etcd-restore.timer
}

# recover_step STEP: before another attempt. A failed init or fresh join is undone with `kubeadm reset` (it
# removes this node's etcd member and clears the data directory, which then holds nothing of value); a failed
# restore is retried as it is: the etcd data on the volume is never cleared.
recover_step() {
  if [[ "$1" != "control-plane" ]]; then
    return 0
  fi
  if [[ "$(cat "$STATE_DIR/control-plane-mode" 2>/dev/null)" == "restore" ]]; then
    log "the restore of member $MEMBER failed: retrying it (the etcd data on the volume is kept)"
    return 0
  fi
  if [[ ! -e "$STATE_DIR/kubeadm-ran" ]]; then
    return 0
  fi
  log "undoing the failed kubeadm run with kubeadm reset before the next attempt"
  kubeadm reset --force || log "kubeadm reset failed; trying again anyway"
  rm -f "$STATE_DIR/kubeadm-ran"
  # reset deletes /etc/kubernetes/pki: the shared CAs come from the bucket again
  rm -f "$STATE_DIR/install-pki.done"
}

main() {
  log "bootstrap of a control-plane member (Kubernetes $K8S_PATCH) starting"
  step prepare-host prepare_host
  step install-packages install_packages
  step configure-containerd configure_containerd
  CURRENT_STEP="identify"
  identify_node
  ETCD_LOCAL="https://$NODE_IP:2379"
  retry "instance tag kubeaws.io/control-plane-member" find_member_index
  log "control-plane member $MEMBER of $MEMBERS"
  fetch_cluster_info
  step attach-etcd-volume attach_etcd_volume
  VOLUME_ID="$(cat "$STATE_DIR/etcd-volume")"
  step mount-etcd-volume mount_etcd_volume
  step install-pki install_pki
  step control-plane start_control_plane
  step publish publish_cluster
  step serving-approver install_approver
  if [[ "$MEMBER" == "0" ]]; then
    step addons install_addons
  fi
  step taints adjust_taints
  step harden-files harden_kubelet_files
  step timers install_timers
}

if [[ -e "$STATE_DIR/bootstrap.done" ]]; then
  log "bootstrap already complete; nothing to do"
  exit 0
fi
run_boot main
touch "$STATE_DIR/bootstrap.done"
CURRENT_STEP="end"
log "bootstrap complete: control-plane member $(cat "$STATE_DIR/member") ($(cat "$STATE_DIR/node-ip")) is up"
