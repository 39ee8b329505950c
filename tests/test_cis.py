"""The CIS Kubernetes Benchmark as kube-bench checks it on a kubeadm cluster, mapped check by check to what kubeaws
renders (issue #10, item 6; docs/security.md "CIS benchmark").

The check ids and what each one tests come from aquasecurity/kube-bench `cfg/cis-1.12/{master,controlplane,etcd,
node}.yaml` (the benchmark kube-bench runs for Kubernetes 1.32-1.34) plus `cfg/cis-1.11` (1.29-1.31: the same ids
and 4.2.15); kubeaws supports 1.30 and later. Every id is mapped exactly once, to either
- `Rendered`: kubeaws sets it, and `check` proves it on the rendered files with kube-bench's own comparison
  (eq / gte / has / nothave / valid_elements, or the chmod the boot script runs for a file check), for
  examples/ha.yaml, examples/dev.yaml and a 1.30 spec (kubeadm v1beta3: extraArgs as a map); or
- `Default`: kubeadm or the kubelet satisfies it by default, and kubeaws must not override the flag or field
  (`absent` names them; the test fails if a renderer starts setting one); or
- `NotSet`: a check kubeaws leaves alone on purpose (`manual` in kube-bench, or `not applicable`), with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from kubeaws import pki
from kubeaws.addons import render_manifests
from kubeaws.bootstrap import artifacts
from kubeaws.bootstrap.kubeadm import CLUSTER_CA, ETCD_DATA_DIR
from kubeaws.spec.load import load_spec
from kubeaws.spec.models import ClusterSpec
from tests.helpers import make_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# kube-bench's `valid_elements` lists (cis-1.12; cis-1.11's lists are supersets of these).
API_SERVER_STRONG = {
    "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}
KUBELET_STRONG = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
}


@dataclass
class Files:
    """The rendered files of one spec, read the way kube-bench reads the running components."""

    spec: ClusterSpec
    files: dict[str, str]
    cluster: dict[str, Any] = field(init=False)
    kubelet: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        docs = {d["kind"]: d for d in yaml.safe_load_all(self.files["kubeadm/init.yaml"])}
        self.cluster, self.kubelet = docs["ClusterConfiguration"], docs["KubeletConfiguration"]

    def args(self, component: str) -> dict[str, str]:
        """extraArgs of apiServer / controllerManager / scheduler / etcd.local (v1beta3 map or v1beta4 list)."""
        section = self.cluster["etcd"]["local"] if component == "etcd" else self.cluster.get(component) or {}
        raw = section.get("extraArgs") or {}
        return {a["name"]: a["value"] for a in raw} if isinstance(raw, list) else dict(raw)

    def api(self, flag: str) -> str | None:
        return self.args("apiServer").get(flag)

    def scripts(self) -> list[str]:
        """The boot scripts of the control plane and of every node group."""
        return [v for k, v in self.files.items() if k.startswith("scripts/bootstrap-")]

    @property
    def control_plane(self) -> str:
        return self.files["scripts/bootstrap-control-plane.sh"]


def harden_chmods(f: Files, path: str) -> bool:
    """The boot scripts' harden step makes `path` 0600 (every role runs the step after kubeadm)."""
    for script in f.scripts():
        body = script[script.index("harden_kubelet_files() {"):]
        body = body[:body.index("\n}\n")]
        if path not in body or "chmod 600" not in body or "step harden-files harden_kubelet_files" not in script:
            return False
    return True


def own_etcd_ca(f: Files) -> bool:
    """kubeaws generates the etcd CA apart from the cluster CA, and every member installs both."""
    installed = re.search(r'PKI_FILES="([^"]*)"', f.control_plane)
    files = installed.group(1).split() if installed else []
    return {"ca", "etcd/ca"} <= {name for name, _ in pki.CAS} and {"ca.crt", "etcd/ca.crt"} <= set(files)


@dataclass(frozen=True)
class Rendered:
    where: str
    check: Callable[[Files], bool]


@dataclass(frozen=True)
class Default:
    by: str
    absent: tuple[str, ...] = ()  # "component:flag" (extraArgs) or "kubelet:field" kubeaws must not set


@dataclass(frozen=True)
class NotSet:
    kind: Literal["manual", "not applicable"]
    reason: str


Entry = Rendered | Default | NotSet
KUBEADM_FILE = "kubeadm writes it 0600 root:root (kubeconfigs and static pod manifests)"
KUBEADM_ETCD = "kubeadm's etcd static pod (stacked etcd, its own CA, client and peer certificates)"

CIS: dict[str, Entry] = {
    # 1.1 control-plane files
    **{i: Default(KUBEADM_FILE) for i in ("1.1.1", "1.1.2", "1.1.3", "1.1.4", "1.1.5", "1.1.6", "1.1.7", "1.1.8",
                                          "1.1.13", "1.1.14", "1.1.15", "1.1.16", "1.1.17", "1.1.18")},
    "1.1.9": NotSet("manual", "the CNI configuration is written by the CNI's own installer (calico, flannel or "
                              "cilium DaemonSet), not by kubeaws"),
    "1.1.10": NotSet("manual", "same files as 1.1.9, written by the CNI's installer as root"),
    "1.1.11": Rendered("etcd dataDir /var/lib/etcd/data created 0700 by the boot script (install -d -m 0700) "
                       "on every path: init, join, restore, stale data set aside",
                       lambda f: f.cluster["etcd"]["local"]["dataDir"] == ETCD_DATA_DIR
                       and 'ETCD_DATA="$ETCD_MOUNT/data"' in f.control_plane
                       and f.control_plane.count('install -d -m 0700 "$ETCD_DATA"') >= 2),
    "1.1.12": NotSet("not applicable", "kubeadm runs etcd as root in a static pod: there is no etcd user; the "
                                       "data directory is root:root 0700 (1.1.11)"),
    "1.1.19": Default("the boot script and kubeadm run as root: /etc/kubernetes/pki is root:root"),
    "1.1.20": Default("kubeadm writes certificates 0644; the CAs kubeaws installs are 0600 (written under umask "
                      "077), stricter than 644"),
    "1.1.21": Rendered("install_pki: chmod 600 of every key (kubeadm writes its own keys 0600)",
                       lambda f: 'chmod 600 "$K8S_DIR"/pki/*.key "$K8S_DIR"/pki/etcd/*.key' in f.control_plane),
    # 1.2 API server
    "1.2.1": NotSet("manual", "kubeadm's liveness/readiness/startup probes of the API server are anonymous "
                              "(/livez, /readyz); RBAC gives system:anonymous only the public health and version "
                              "endpoints (system:public-info-viewer)"),
    "1.2.2": Default("kubeadm sets no token file", ("apiServer:token-auth-file",)),
    "1.2.3": Rendered("--enable-admission-plugins has DenyServiceExternalIPs",
                      lambda f: "DenyServiceExternalIPs" in (f.api("enable-admission-plugins") or "").split(",")),
    "1.2.4": Default("kubeadm sets --kubelet-client-certificate/-key (apiserver-kubelet-client)",
                     ("apiServer:kubelet-client-certificate", "apiServer:kubelet-client-key")),
    "1.2.5": Rendered("--kubelet-certificate-authority = the cluster CA, which signs the kubelets' serving "
                      "certificates (serverTLSBootstrap + kubeaws' approver)",
                      lambda f: f.api("kubelet-certificate-authority") == CLUSTER_CA
                      and f.kubelet["serverTLSBootstrap"] is True),
    "1.2.6": Default("kubeadm sets --authorization-mode=Node,RBAC", ("apiServer:authorization-mode",)),
    "1.2.7": Default("kubeadm sets --authorization-mode=Node,RBAC", ("apiServer:authorization-mode",)),
    "1.2.8": Default("kubeadm sets --authorization-mode=Node,RBAC", ("apiServer:authorization-mode",)),
    "1.2.9": NotSet("manual", "EventRateLimit needs an admission configuration of limits (its API is still "
                              "eventratelimit.admission.k8s.io/v1alpha1); a limit that fits one cluster throttles "
                              "another's controllers. API Priority and Fairness already bounds event writers"),
    "1.2.10": Rendered("--enable-admission-plugins without AlwaysAdmit",
                       lambda f: "AlwaysAdmit" not in (f.api("enable-admission-plugins") or "").split(",")),
    "1.2.11": NotSet("manual", "AlwaysPullImages makes every container start depend on the registry (or the "
                               "mirror of mirrors.imageRepository): a registry outage would stop pod restarts, "
                               "static pods included. Every image kubeaws installs is pinned by tag in its "
                               "version table"),
    "1.2.12": Default("the ServiceAccount plugin is on by default", ("apiServer:disable-admission-plugins",)),
    "1.2.13": Default("the NamespaceLifecycle plugin is on by default", ("apiServer:disable-admission-plugins",)),
    "1.2.14": Rendered("--enable-admission-plugins has NodeRestriction (kubeadm's default, kept)",
                       lambda f: "NodeRestriction" in (f.api("enable-admission-plugins") or "").split(",")),
    "1.2.15": Rendered("--profiling=false", lambda f: f.api("profiling") == "false"),
    "1.2.16": Rendered("--audit-log-path", lambda f: bool(f.api("audit-log-path"))),
    "1.2.17": Rendered("--audit-log-maxage=30", lambda f: int(f.api("audit-log-maxage") or 0) >= 30),
    "1.2.18": Rendered("--audit-log-maxbackup=10", lambda f: int(f.api("audit-log-maxbackup") or 0) >= 10),
    "1.2.19": Rendered("--audit-log-maxsize=100", lambda f: int(f.api("audit-log-maxsize") or 0) >= 100),
    "1.2.20": NotSet("manual", "--request-timeout keeps its default (60s): long requests are watches, which it "
                               "does not cut"),
    "1.2.21": Rendered("--service-account-lookup=true", lambda f: f.api("service-account-lookup") == "true"),
    "1.2.22": Default("kubeadm sets --service-account-key-file (sa.pub, from kubeaws' PKI)",
                      ("apiServer:service-account-key-file",)),
    "1.2.23": Default("kubeadm sets --etcd-certfile/--etcd-keyfile", ("apiServer:etcd-certfile",)),
    "1.2.24": Default("kubeadm sets --tls-cert-file/--tls-private-key-file", ("apiServer:tls-cert-file",)),
    "1.2.25": Default("kubeadm sets --client-ca-file", ("apiServer:client-ca-file",)),
    "1.2.26": Default("kubeadm sets --etcd-cafile", ("apiServer:etcd-cafile",)),
    "1.2.27": Rendered("--encryption-provider-config", lambda f: bool(f.api("encryption-provider-config"))),
    "1.2.28": Rendered("the EncryptionConfiguration the boot script writes: aescbc for secrets, identity only as "
                       "the read fallback",
                       lambda f: '"      - aescbc:"' in f.control_plane
                       and f.control_plane.index('"      - aescbc:"')
                       < f.control_plane.index('"      - identity: {}"')),
    "1.2.29": Rendered("--tls-cipher-suites: ECDHE with AES-GCM / ChaCha20-Poly1305",
                       lambda f: set((f.api("tls-cipher-suites") or "x").split(",")) <= API_SERVER_STRONG),
    "1.2.30": Rendered("--service-account-extend-token-expiration=false",
                       lambda f: f.api("service-account-extend-token-expiration") == "false"),
    # 1.3 controller manager, 1.4 scheduler
    "1.3.1": Rendered("--terminated-pod-gc-threshold=1000",
                      lambda f: bool(f.args("controllerManager").get("terminated-pod-gc-threshold"))),
    "1.3.2": Rendered("--profiling=false", lambda f: f.args("controllerManager").get("profiling") == "false"),
    "1.3.3": Default("kubeadm sets --use-service-account-credentials=true",
                     ("controllerManager:use-service-account-credentials",)),
    "1.3.4": Default("kubeadm sets --service-account-private-key-file",
                     ("controllerManager:service-account-private-key-file",)),
    "1.3.5": Default("kubeadm sets --root-ca-file", ("controllerManager:root-ca-file",)),
    "1.3.6": Default("RotateKubeletServerCertificate is on by default (GA); no feature gate is rendered",
                     ("controllerManager:feature-gates",)),
    "1.3.7": Default("kubeadm sets --bind-address=127.0.0.1", ("controllerManager:bind-address",)),
    "1.4.1": Rendered("--profiling=false", lambda f: f.args("scheduler").get("profiling") == "false"),
    "1.4.2": Default("kubeadm sets --bind-address=127.0.0.1", ("scheduler:bind-address",)),
    # 2 etcd
    **{i: Default(KUBEADM_ETCD, ("etcd:cert-file", "etcd:key-file", "etcd:client-cert-auth", "etcd:auto-tls",
                                 "etcd:peer-cert-file", "etcd:peer-key-file", "etcd:peer-client-cert-auth",
                                 "etcd:peer-auto-tls", "etcd:trusted-ca-file"))
       for i in ("2.1", "2.2", "2.3", "2.4", "2.5", "2.6")},
    "2.7": Rendered("etcd has its own CA (etcd/ca.crt), apart from the cluster CA, in kubeaws' PKI",
                    lambda f: own_etcd_ca(f)),
    # 3 authentication and logging
    "3.1.1": NotSet("manual", "`kubeaws kubeconfig` hands the admin a client certificate (system:masters) valid "
                              "24 hours, for bootstrap and break-glass; day-to-day users belong in an OIDC "
                              "provider, which is the cluster owner's choice"),
    "3.1.2": NotSet("manual", "kubeaws creates no service-account tokens for users"),
    "3.1.3": NotSet("manual", "bootstrap tokens are for nodes joining only (TTL 4 h, refreshed hourly in the state "
                              "bucket, readable by the node role)"),
    "3.2.1": Rendered("--audit-policy-file (kubeaws' audit policy)",
                      lambda f: bool(f.api("audit-policy-file"))
                      and any("kind: Policy" in v for k, v in f.files.items() if k.startswith("user-data/control"))),
    "3.2.2": NotSet("manual", "the policy logs metadata of every request (secrets, tokens and token reviews "
                              "without bodies); whether that covers an organisation's concerns is its call"),
    # 4.1 worker node files
    "4.1.1": Rendered("harden step: chmod 600 of the kubelet unit and its drop-ins",
                      lambda f: harden_chmods(f, "/usr/lib/systemd/system/kubelet.service")
                      and harden_chmods(f, "/usr/lib/systemd/system/kubelet.service.d/*.conf")),
    "4.1.2": Default("the kubelet and kubeadm packages install their units root:root"),
    "4.1.3": NotSet("not applicable", "kube-proxy runs as kubeadm's DaemonSet with its kubeconfig in a "
                                      "ConfigMap: no proxy kubeconfig file on the host"),
    "4.1.4": NotSet("not applicable", "as 4.1.3: no proxy kubeconfig file on the host"),
    "4.1.5": Default(KUBEADM_FILE + " (kubelet.conf)"),
    "4.1.6": Default(KUBEADM_FILE + " (kubelet.conf)"),
    "4.1.7": Default("kubeadm writes the CA 0644 on nodes; the control plane's is 0600"),
    "4.1.8": Default("kubeadm writes the CA as root"),
    "4.1.9": Rendered("harden step: chmod 600 of /var/lib/kubelet/config.yaml (kubeadm writes it 0644)",
                      lambda f: harden_chmods(f, "/var/lib/kubelet/config.yaml")),
    "4.1.10": Default("kubeadm writes the kubelet config as root"),
    # 4.2 kubelet
    "4.2.1": Rendered("authentication.anonymous.enabled: false",
                      lambda f: f.kubelet["authentication"]["anonymous"]["enabled"] is False),
    "4.2.2": Rendered("authorization.mode: Webhook", lambda f: f.kubelet["authorization"]["mode"] == "Webhook"),
    "4.2.3": Rendered("authentication.x509.clientCAFile",
                      lambda f: f.kubelet["authentication"]["x509"]["clientCAFile"] == CLUSTER_CA),
    "4.2.4": Rendered("readOnlyPort: 0", lambda f: f.kubelet["readOnlyPort"] == 0),
    "4.2.5": Default("the kubelet's default streamingConnectionIdleTimeout is 4h",
                     ("kubelet:streamingConnectionIdleTimeout",)),
    "4.2.6": Rendered("makeIPTablesUtilChains: true", lambda f: f.kubelet["makeIPTablesUtilChains"] is True),
    "4.2.7": NotSet("not applicable", "a node's name must be EC2's private DNS name (cloud-provider-aws and the "
                                      "serving-certificate approver identify nodes by it); kubeadm passes it as "
                                      "--hostname-override when the OS hostname is the short one"),
    "4.2.8": Rendered("eventRecordQPS: 5", lambda f: f.kubelet["eventRecordQPS"] >= 0),
    "4.2.9": NotSet("not applicable", "with serverTLSBootstrap the kubelet's serving certificate is signed by the "
                                      "cluster CA and rotated (kubelet-server-current.pem); tlsCertFile would replace "
                                      "it with a file nobody rotates. kube-bench looks only for the field"),
    "4.2.10": Rendered("rotateCertificates: true", lambda f: f.kubelet["rotateCertificates"] is True),
    "4.2.11": Rendered("serverTLSBootstrap: true, the RotateKubeletServerCertificate gate left on (default)",
                       lambda f: f.kubelet["serverTLSBootstrap"] is True and "featureGates" not in f.kubelet),
    "4.2.12": Rendered("tlsCipherSuites: ECDHE with AES-GCM / ChaCha20-Poly1305",
                       lambda f: bool(f.kubelet["tlsCipherSuites"]) and set(f.kubelet["tlsCipherSuites"])
                       <= KUBELET_STRONG),
    "4.2.13": NotSet("manual", "a per-pod PID limit depends on the workloads (thread-heavy JVMs, build pods); "
                               "left to the cluster owner (a maxPods-style per-group setting would be the place)"),
    "4.2.14": NotSet("manual", "seccompDefault turns every unconfined container into RuntimeDefault: not verified "
                               "with the CNIs kubeaws installs (cilium's agent among them); left off"),
    "4.2.15": NotSet("manual", "cis-1.11 only: a systemd IPAddressDeny for the kubelet would cut it from the API "
                               "server, the registries and the CNI; the security groups restrict it instead"),
    "4.3.1": Default("kubeadm's kube-proxy configuration keeps metricsBindAddress 127.0.0.1:10249"),
}

#: Every check id of kube-bench's cis-1.12 (master, controlplane, etcd, node) and cis-1.11 for kubeadm.
KUBE_BENCH_IDS = (
    [f"1.1.{i}" for i in range(1, 22)] + [f"1.2.{i}" for i in range(1, 31)] + [f"1.3.{i}" for i in range(1, 8)]
    + ["1.4.1", "1.4.2"] + [f"2.{i}" for i in range(1, 8)] + ["3.1.1", "3.1.2", "3.1.3", "3.2.1", "3.2.2"]
    + [f"4.1.{i}" for i in range(1, 11)] + [f"4.2.{i}" for i in range(1, 16)] + ["4.3.1"])


def _specs() -> list[ClusterSpec]:
    return [load_spec(EXAMPLES / "ha.yaml"), load_spec(EXAMPLES / "dev.yaml"),
            make_spec(name="v130", kubernetesVersion="1.30", controlPlane={"count": 3}, addons={"metricsServer": {}})]


@pytest.fixture(scope="module", params=_specs(), ids=lambda s: f"{s.name}-{s.spec.kubernetes_version}")
def rendered(request: pytest.FixtureRequest) -> Files:
    spec: ClusterSpec = request.param
    return Files(spec, artifacts(spec, f"kubeaws-{spec.name}-0123456789"))


def test_every_kube_bench_check_is_mapped_once() -> None:
    assert sorted(CIS, key=_order) == sorted(KUBE_BENCH_IDS, key=_order)
    assert len(KUBE_BENCH_IDS) == len(set(KUBE_BENCH_IDS)) == 98
    for check, entry in CIS.items():
        if isinstance(entry, Rendered):
            reason = entry.where
        else:
            reason = entry.by if isinstance(entry, Default) else entry.reason
        assert len(reason) >= 12, check  # a reason, not a placeholder


def _order(check: str) -> list[int]:
    return [int(p) for p in check.split(".")]


@pytest.mark.parametrize("check", [c for c, e in CIS.items() if isinstance(e, Rendered)])
def test_rendered_checks_hold_in_the_rendered_config(rendered: Files, check: str) -> None:
    entry = CIS[check]
    assert isinstance(entry, Rendered)
    assert entry.check(rendered), f"CIS {check} ({entry.where}) does not hold for {rendered.spec.name}"


@pytest.mark.parametrize("check", [c for c, e in CIS.items() if isinstance(e, Default) and e.absent])
def test_kubeaws_leaves_the_defaults_it_relies_on_alone(rendered: Files, check: str) -> None:
    entry = CIS[check]
    assert isinstance(entry, Default)
    for item in entry.absent:
        component, name = item.split(":")
        present = name in rendered.kubelet if component == "kubelet" else name in rendered.args(component)
        assert not present, f"CIS {check} relies on {entry.by!r}, but kubeaws renders {item}"


def test_kubeaws_renders_no_kube_proxy_configuration(rendered: Files) -> None:
    """4.3.1 relies on kubeadm's KubeProxyConfiguration; kubeaws renders none (nor a kube-proxy patch)."""
    assert "KubeProxyConfiguration" not in rendered.files["kubeadm/init.yaml"]


def test_metrics_server_verifies_kubelets_with_the_cluster_ca(rendered: Files) -> None:
    """serverTLSBootstrap's other consumer: metrics-server checks kubelets against the service-account CA
    (the kube-root-ca.crt ConfigMap, i.e. the cluster CA) and reaches them by their InternalIP first."""
    manifest = render_manifests(rendered.spec)["metrics-server.yaml"]
    deployment = next(d for d in yaml.safe_load_all(manifest) if d and d["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--kubelet-insecure-tls" not in args
    assert "--kubelet-certificate-authority=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt" in args
    preferred = next(a for a in args if a.startswith("--kubelet-preferred-address-types="))
    assert preferred.split("=", 1)[1].split(",")[0] == "InternalIP"
    assert deployment["spec"]["template"]["spec"].get("automountServiceAccountToken", True) is True


def test_a_check_fails_when_the_setting_is_missing(rendered: Files) -> None:
    """The checks can fail: drop what 1.2.5, 1.2.29, 4.2.12 and 4.1.9 look at and they do."""
    broken = Files(rendered.spec, {
        **rendered.files,
        "kubeadm/init.yaml": re.sub(r"kubelet-certificate-authority|tls-cipher-suites", "x-removed",
                                    rendered.files["kubeadm/init.yaml"]).replace("tlsCipherSuites:\n- ",
                                                                                 "tlsCipherSuites:\n- TLS_RSA_X\n- "),
        **{k: v.replace("/var/lib/kubelet/config.yaml", "/nowhere") for k, v in rendered.files.items()
           if k.startswith("scripts/")},
    })
    for check in ("1.2.5", "1.2.29", "4.2.12", "4.1.9"):
        entry = CIS[check]
        assert isinstance(entry, Rendered) and not entry.check(broken), check
