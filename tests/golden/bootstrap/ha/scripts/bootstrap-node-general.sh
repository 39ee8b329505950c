#!/bin/bash
# kubeaws bootstrap of a node of group "general" in cluster "prod-ha" (rendered by kubeaws).
# Idempotent: finished steps leave markers under /var/lib/kubeaws and are skipped on a re-run.
# Extra EBS volumes of the group are left raw (never formatted or mounted): they are for Rook/Ceph.
set -euo pipefail
# ---- common part (kubeaws/bootstrap/templates/lib.sh.j2) ----
# Every path honours KUBEAWS_ROOT (empty on a real node) so that the script can run unprivileged in a sandbox.
ROOT="${KUBEAWS_ROOT:-}"
ROLE=node
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

GROUP=general
join_cluster() {
  fetch_token
  render_config join-general.yaml join.yaml "$JOIN_TOKEN"
  touch "$STATE_DIR/kubeadm-ran"
  kubeadm join --config "$RUN_DIR/join.yaml"
  rm -f "$RUN_DIR/join.yaml" "$RUN_DIR/token"
}

# recover_step STEP: a failed join is undone with `kubeadm reset` before the next attempt (its preflight
# refuses a node with a kubelet.conf or a CA certificate left behind).
recover_step() {
  if [[ "$1" == "kubeadm-join" && -e "$STATE_DIR/kubeadm-ran" ]]; then
    log "undoing the failed kubeadm join with kubeadm reset before the next attempt"
    kubeadm reset --force || log "kubeadm reset failed; trying again anyway"
    rm -f "$RUN_DIR/join.yaml" "$RUN_DIR/token" "$STATE_DIR/kubeadm-ran"
  fi
}

main() {
  log "bootstrap of node group $GROUP (Kubernetes $K8S_PATCH) starting"
  step prepare-host prepare_host
  step install-packages install_packages
  step configure-containerd configure_containerd
  CURRENT_STEP="identify"
  identify_node
  fetch_cluster_info
  step kubeadm-join join_cluster
  step harden-files harden_kubelet_files
}

if [[ -e "$STATE_DIR/bootstrap.done" ]]; then
  log "bootstrap already complete; nothing to do"
  exit 0
fi
run_boot main
touch "$STATE_DIR/bootstrap.done"
CURRENT_STEP="end"
log "bootstrap complete: node $(cat "$STATE_DIR/instance-id") joined $CLUSTER"
