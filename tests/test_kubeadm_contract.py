"""The kubeadm contract of the bootstrap sandbox (tests/sandbox/kubeadm_contract.py): what kubeaws renders and runs
passes it, and each rule it transcribes from kubeadm refuses what kubeadm refuses."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kubeaws.bootstrap import kubeadm
from tests.helpers import make_spec
from tests.sandbox import kubeadm_contract as contract

TEMPLATES = Path(kubeadm.__file__).parent / "templates"
VERSIONS = ("1.30", "1.31", "1.33")
ALL_VERSIONS = tuple(f"1.{m}" for m in range(30, 38))
FILLED = {"@@ENDPOINT@@": "api.dev.example.internal", "@@PORT@@": "6443", "@@NODE_NAME@@": "ip-10-0-1-23.ec2.internal",
          "@@NODE_IP@@": "10.0.1.23", "@@TOKEN@@": "abcdef.0123456789abcdef", "@@CA_HASH@@": "sha256:" + "ab" * 32}
GROUP = {"name": "general", "instanceTypes": ["m5.large"], "maxPods": 58, "labels": {"team": "dsp"},
         "taints": [{"key": "team", "value": "dsp", "effect": "NoSchedule"}]}


def rendered(version: str) -> dict[str, str]:
    spec = make_spec(kubernetesVersion=version, controlPlane={"count": 3}, nodeGroups=[GROUP],
                     addons={"cloudProviderAWS": {}})
    return {**kubeadm.render_kubeadm_configs(spec, "control-plane"),
            **kubeadm.render_kubeadm_configs(spec, "node", "general")}


def fill(text: str, **override: str) -> str:
    for placeholder, value in {**FILLED, **{f"@@{k}@@": v for k, v in override.items()}}.items():
        text = text.replace(placeholder, value)
    return text


def check(text: str, argv: list[str], version: str) -> dict[str, dict[str, Any]]:
    configs = contract.load_configs(text, version)
    contract.validate(configs, contract.parse_command(argv, version), version)
    return configs


def argv_for(name: str) -> list[str]:
    return ["init", "--config", "/run/init.yaml", "--skip-token-print"] if name == "init.yaml" else \
        ["join", "--config", "/run/join.yaml"]


# --- what kubeaws renders and runs ----------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", ["init.yaml", "join-control-plane.yaml", "join-general.yaml"])
def test_rendered_configs_pass_once_filled(version: str, name: str) -> None:
    configs = check(fill(rendered(version)[name]), argv_for(name), version)
    expected = "kubeadm.k8s.io/v1beta3" if version == "1.30" else "kubeadm.k8s.io/v1beta4"
    kind = "InitConfiguration" if name == "init.yaml" else "JoinConfiguration"
    assert configs[kind]["apiVersion"] == expected


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "placeholder", "message"), [
    ("join-general.yaml", "TOKEN", 'discovery.bootstrapToken.token: Invalid value: "@@TOKEN@@": the bootstrap token'),
    ("join-control-plane.yaml", "TOKEN", 'discovery.tlsBootstrapToken: Invalid value: "@@TOKEN@@"'),
    ("join-general.yaml", "CA_HASH", 'invalid discovery token CA certificate hash: invalid hash, expected "format:'),
    ("join-general.yaml", "NODE_NAME", 'nodeRegistration.name: Invalid value: "@@node_name@@": a lowercase RFC 1123'),
    ("join-general.yaml", "NODE_IP", 'kubelet --node-ip="@@NODE_IP@@": invalid node IP'),
    ("init.yaml", "NODE_IP", 'couldn\'t use "@@NODE_IP@@" as "apiserver-advertise-address"'),
    ("init.yaml", "ENDPOINT", 'controlPlaneEndpoint: Invalid value: "@@ENDPOINT@@:6443": endpoint is not valid'),
    ("join-control-plane.yaml", "NODE_IP", 'couldn\'t use "@@NODE_IP@@" as "apiserver-advertise-address"'),
])
def test_an_unfilled_placeholder_fails(version: str, name: str, placeholder: str, message: str) -> None:
    text = fill(rendered(version)[name].replace(f"@@{placeholder}@@", f"@@{placeholder}\x00@@"))
    with pytest.raises(contract.ContractError) as err:
        check(text.replace(f"@@{placeholder}\x00@@", f"@@{placeholder}@@"), argv_for(name), version)
    assert message in str(err.value)


def script_commands() -> list[list[str]]:
    """Every kubeadm command line of the boot scripts, shell variables replaced by plausible paths."""
    out = []
    for template in sorted(TEMPLATES.glob("*.j2")):
        for line in template.read_text().splitlines():
            m = re.search(r"(?:^|\$\(|\|\|)\s*kubeadm ([^)>|;&]*)", line.strip())
            if m and not line.strip().startswith("#"):
                words = shlex.split(m.group(1).replace("$RUN_DIR", "/etc/kubeaws/run").replace("$K8S_DIR", "/k8s")
                                    .replace("$ROOT", ""))
                out.append(words)
    return out


def test_the_scripts_run_kubeadm() -> None:
    commands = [" ".join(c[:3]) for c in script_commands()]
    assert "init --config /etc/kubeaws/run/init.yaml" in commands
    assert "join phase control-plane-join" in commands and "token create --ttl" in commands


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_every_kubeadm_command_of_the_boot_scripts_parses(version: str) -> None:
    for argv in script_commands():
        inv = contract.parse_command(argv, version)
        assert inv.path[0] in ("init", "join", "token", "reset", "config") and not inv.help_only, argv


# --- command line -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "version", "message"), [
    ("init --skip-token-prnt", "1.31", "unknown flag: --skip-token-prnt"),
    ("join --bogus-flag", "1.30", "unknown flag: --bogus-flag"),
    ("init -z", "1.31", "unknown shorthand flag: 'z' in -z"),
    ("init --config x.yaml --pod-network-cidr 10.0.0.0/16", "1.33", "can not mix '--config' with arguments "
                                                                     "[pod-network-cidr]"),
    ("join --config j.yaml --token abcdef.0123456789abcdef --add-dir-header", "1.31",
     "can not mix '--config' with arguments [add-dir-header token]"),
    ("upgrade apply --config u.yaml --yes", "1.30", "can not mix '--config' with arguments [yes]"),
    ("init phase bogus", "1.31", 'unknown command "bogus" for "kubeadm init phase"'),
    ("init phase certs bogus", "1.31", 'unknown command "bogus" for "kubeadm init phase certs"'),
    ("join phase control-plane-join update-status", "1.31",
     'unknown command "update-status" for "kubeadm join phase control-plane-join"'),
    ("join phase control-plane-join etcd", "1.35", 'unknown command "etcd" for "kubeadm join phase control-plane'),
    ("init phase kubelet-finalize enable-client-cert-rotation", "1.30", 'unknown command "enable-client-cert-'),
    ("upgrade apply phase preflight", "1.31", "accepts at most 1 arg(s), received 2"),
    ("init phase certs sa --config i.yaml", "1.30", "unknown flag: --config"),
    ("init bogus", "1.31", 'unknown command "bogus" for "kubeadm init"'),
    ("bogus", "1.31", 'unknown command "bogus" for "kubeadm"'),
    ("token", "1.31", '"kubeadm token" is not meant to be run on its own'),
    ("join 10.0.0.1:6443 10.0.0.2:6443", "1.31", "accepts at most 1 arg(s), received 2"),
    ("token delete", "1.31", "requires at least 1 arg(s), only received 0"),
    ("init --config", "1.31", "flag needs an argument: --config"),
    ("init --apiserver-bind-port x", "1.31", 'invalid argument "x" for "--apiserver-bind-port" flag: strconv.ParseInt'),
    ("token create --ttl 4y", "1.31", 'invalid argument "4y" for "--ttl" flag: time: invalid duration "4y"'),
    ("init --skip-phases addon/kube-proxy,bogus", "1.31", "invalid phase name: bogus"),
    ("init --ignore-preflight-errors all,Swap", "1.31", "don't specify individual checks if 'all' is used"),
    ("init --feature-gates Bogus=true", "1.31", "unrecognized feature-gate key: Bogus"),
    ("init --feature-gates PublicKeysECDSA=true", "1.30", "feature-gate key is deprecated: PublicKeysECDSA"),
    ("init --feature-gates NodeLocalCRISocket=true", "1.31", "unrecognized feature-gate key: NodeLocalCRISocket"),
    ("init --log-file /tmp/k.log", "1.31", "unknown flag: --log-file"),
    ("upgrade diff --api-server-manifest /m.yaml", "1.32", "unknown flag: --api-server-manifest"),
])
def test_command_lines_kubeadm_refuses(argv: str, version: str, message: str) -> None:
    with pytest.raises(contract.ContractError) as err:
        contract.parse_command(shlex.split(argv), version)
    assert message in str(err.value)


@pytest.mark.parametrize(("argv", "version", "path", "flags"), [
    ("init --config x.yaml --skip-token-print -v 5", "1.30", ("init",),
     {"config": ["x.yaml"], "skip-token-print": ["true"], "v": ["5"]}),
    ("join phase control-plane-join update-status", "1.30", ("join", "phase", "control-plane-join", "update-status"),
     {}),
    ("join phase control-plane-join etcd --config j.yaml", "1.34", ("join", "phase", "control-plane-join", "etcd"),
     {"config": ["j.yaml"]}),
    ("join phase etcd-join --config j.yaml", "1.35", ("join", "phase", "etcd-join"), {"config": ["j.yaml"]}),
    ("init phase kubelet-finalize enable-client-cert-rotation", "1.31",
     ("init", "phase", "kubelet-finalize", "enable-client-cert-rotation"), {}),
    ("init phase kubeconfig super-admin --config i.yaml", "1.30", ("init", "phase", "kubeconfig", "super-admin"),
     {"config": ["i.yaml"]}),
    ("upgrade apply phase addon coredns", "1.32", ("upgrade", "apply", "phase", "addon", "coredns"), {}),
    ("upgrade apply --config u.yaml --yes", "1.31", ("upgrade", "apply"), {"config": ["u.yaml"], "yes": ["true"]}),
    ("token list -o json", "1.30", ("token", "list"), {"experimental-output": ["json"]}),
    ("token list -o json", "1.31", ("token", "list"), {"output": ["json"]}),
    ("upgrade diff -c=3 v1.31.2", "1.31", ("upgrade", "diff"), {"context-lines": ["3"]}),
    ("reset -f --skip-phases cleanup-node", "1.33", ("reset",), {"force": ["true"], "skip-phases": ["cleanup-node"]}),
    ("certs renew super-admin.conf", "1.30", ("certs", "renew", "super-admin.conf"), {}),
    ("init --log-file /tmp/k.log", "1.30", ("init",), {"log-file": ["/tmp/k.log"]}),
])
def test_command_lines_kubeadm_accepts(argv: str, version: str, path: tuple[str, ...],
                                       flags: dict[str, list[str]]) -> None:
    inv = contract.parse_command(shlex.split(argv), version)
    assert (inv.path, inv.flags) == (path, flags)


def test_deprecated_flags_warn_and_parent_phases_only_print_help() -> None:
    assert contract.parse_command(["token", "list", "--experimental-output", "yaml"], "1.31").warnings
    assert contract.parse_command(["init", "phase", "certs"], "1.31").help_only
    assert not contract.parse_command(["init", "phase", "certs", "all"], "1.31").help_only


# --- config files -----------------------------------------------------------------------------------------------

V4 = "apiVersion: kubeadm.k8s.io/v1beta4\n"
V3 = "apiVersion: kubeadm.k8s.io/v1beta3\n"
KUBELET = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"


@pytest.mark.parametrize(("text", "version", "message"), [
    (V4 + "kind: ClusterConfiguration\napiServer:\n  extraArgs:\n    profiling: 'false'\n", "1.31",
     "cannot unmarshal object into Go struct field APIServer.apiServer.extraArgs of type []v1beta4.Arg"),
    (V3 + "kind: ClusterConfiguration\napiServer:\n  extraArgs:\n  - name: profiling\n    value: 'false'\n", "1.30",
     "cannot unmarshal array into Go struct field APIServer.apiServer.extraArgs of type map[string]string"),
    (V4 + "kind: JoinConfiguration\ntaints: []\ndiscovery: {}\n", "1.31", 'unknown field "taints"'),
    (V4 + "kind: ClusterConfiguration\netcd:\n  dataDir: /var/lib/etcd\n", "1.33", 'unknown field "etcd.dataDir"'),
    (V4 + "kind: ClusterConfiguration\napiServer:\n  timeoutForControlPlane: 4m\n", "1.31",
     'unknown field "apiServer.timeoutForControlPlane"'),
    (V4 + "kind: InitConfiguration\nnodeRegistration:\n  Name: n1\n", "1.31", 'unknown field "nodeRegistration.Name"'),
    (V4 + "kind: InitConfiguration\nlocalAPIEndpoint:\n  bindPort: '6443'\n", "1.31",
     "cannot unmarshal string into Go struct field APIEndpoint.localAPIEndpoint.bindPort of type int32"),
    (V4 + "kind: InitConfiguration\nbootstrapTokens:\n- token: abc\n", "1.31",
     'bootstrapTokens[0].token: the bootstrap token "abc" was not of the form'),
    (V4 + "kind: InitConfiguration\nnodeRegistration:\n  taints: {}\n", "1.31",
     "cannot unmarshal object into Go struct field NodeRegistrationOptions.nodeRegistration.taints of type []v1.Taint"),
    (KUBELET + "readOnlyPort: '0'\n", "1.31",
     "cannot unmarshal string into Go struct field KubeletConfiguration.readOnlyPort of type int32"),
    (KUBELET + "syncFrequency: 1x\n", "1.31", 'syncFrequency: time: invalid duration "1x"'),
    (KUBELET + "failCgroupV1: true\n", "1.30", 'unknown field "failCgroupV1"'),
    (KUBELET + "userNamespaces:\n  idsPerPod: 65536\n", "1.32", 'unknown field "userNamespaces"'),
    ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  strict: true\n",
     "1.31", 'unknown field "ipvs.strict"'),
    (V4 + "kind: ClusterConfiguration\n", "1.30",
     'no kind "ClusterConfiguration" is registered for version "kubeadm.k8s.io/v1beta4"'),
    (V3 + "kind: ClusterConfiguration\n", "1.37", 'uses an old API spec: "kubeadm.k8s.io/v1beta3"'),
    (V3 + "kind: ResetConfiguration\n", "1.31", 'no kind "ResetConfiguration" is registered'),
    ("apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n", "1.31", "Please use kubeadm v1.22 instead"),
    ("apiVersion: kubeadm.k8s.io/v1\nkind: ClusterConfiguration\n", "1.37", "experimental API spec"),
    (V4 + "kind: ClusterConfiguration\n---\n" + V4 + "kind: ClusterConfiguration\n", "1.31",
     'kind "ClusterConfiguration" is specified twice in YAML file'),
    (V4 + "kind: ClusterConfiguration\nclusterName: a\nclusterName: b\n", "1.31", 'key "clusterName" already set'),
    ("kind: ClusterConfiguration\n", "1.31", "kind and apiVersion is mandatory information"),
])
def test_config_files_kubeadm_refuses(text: str, version: str, message: str) -> None:
    with pytest.raises(contract.ContractError) as err:
        contract.load_configs(text, version)
    assert message in str(err.value)


def test_init_and_join_only_warn_about_unknown_fields() -> None:
    text = V4 + "kind: JoinConfiguration\ntaints: []\n"
    configs, warnings = contract.load_configs_with_warnings(text, "1.31", strict=False)
    assert "JoinConfiguration" in configs and 'unknown field "taints"' in warnings[0]
    with pytest.raises(contract.ContractError, match="cannot unmarshal"):  # a wrong type fails either way
        contract.load_configs(V4 + "kind: JoinConfiguration\ncaCertPath: [a]\n", "1.31", strict=False)


@pytest.mark.parametrize(("version", "deprecated"), [("1.30", False), ("1.31", True), ("1.36", True)])
def test_v1beta3_is_read_until_1_36_and_warned_about_from_1_31(version: str, deprecated: bool) -> None:
    _, warnings = contract.load_configs_with_warnings(V3 + "kind: ClusterConfiguration\n", version)
    assert bool(warnings) is deprecated


# --- semantic validation ------------------------------------------------------------------------------------------

JOIN = (V4 + "kind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: 10.0.0.1:6443\n"
        "    token: abcdef.0123456789abcdef\n    caCertHashes: [CAHASH]\nnodeRegistration:\n  name: NAME\n")
INIT = V4 + "kind: InitConfiguration\nnodeRegistration:\n  name: n1\n---\n" + V4 + "kind: ClusterConfiguration\n"


@pytest.mark.parametrize(("text", "argv", "message"), [
    (JOIN.replace("NAME", "node_1").replace("CAHASH", "sha256:" + "a" * 64), "join --config j.yaml",
     'nodeRegistration.name: Invalid value: "node_1": a lowercase RFC 1123 subdomain'),
    (JOIN.replace("NAME", "n1").replace("CAHASH", "sha256:abc"), "join --config j.yaml",
     "expected a 32 byte SHA-256 hash, found 1 bytes"),
    (JOIN.replace("NAME", "n1").replace("CAHASH", "md5:" + "a" * 64), "join --config j.yaml",
     'unknown hash format "md5"'),
    (JOIN.replace("NAME", "n1").replace("    caCertHashes: [CAHASH]\n", ""), "join --config j.yaml",
     "using token-based discovery without caCertHashes can be unsafe"),
    (JOIN.replace("NAME", "n1").replace("CAHASH", "sha256:" + "a" * 64) + "  taints:\n  - key: a\n    effect: Never\n",
     "join --config j.yaml", "invalid taint effect: Never, unsupported taint effect"),
    (INIT + "networking:\n  podSubnet: 10.0.0.0/33\n", "init --config i.yaml", 'networking.podSubnet: Invalid value: '
                                                                             '"10.0.0.0/33": couldn\'t parse subnet'),
    (INIT + "networking:\n  serviceSubnet: 10.0.0.0/8\n", "init --config i.yaml", "service subnet is too large"),
    (INIT + "networking:\n  podSubnet: 10.0.0.0/26\n", "init --config i.yaml", "is smaller than the size of node"),
    (INIT + "controlPlaneEndpoint: api:70000\n", "init --config i.yaml", "controlPlaneEndpoint: Invalid value"),
    (INIT + "kubernetesVersion: v1.31.9\n", "init --config i.yaml", "control plane version >= 1.32.0"),
    (INIT + "kubernetesVersion: one\n", "init --config i.yaml", "doesn't match patterns"),
    (INIT + "etcd:\n  local:\n    dataDir: var/lib/etcd\n", "init --config i.yaml", "etcd.local.dataDir: Invalid"),
    (INIT + "encryptionAlgorithm: ECDSA-P384\n", "init --config i.yaml", 'Invalid encryption algorithm "ECDSA-P384"'),
    (INIT + "featureGates:\n  PublicKeysECDSA: true\n", "init --config i.yaml", "is not a valid feature name"),
    (INIT.replace("name: n1", "name: n1\n  criSocket: npipe:////./pipe/containerd"), "init --config i.yaml",
     'only URL scheme "unix" is supported'),
    (V4 + "kind: InitConfiguration\nskipPhases: [addons]\n", "init --config i.yaml", "invalid phase name: addons"),
    (V4 + "kind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 10.0.0.300\n", "init --config i.yaml",
     'couldn\'t use "10.0.0.300" as "apiserver-advertise-address"'),
    (INIT, "join --config j.yaml", "no JoinConfiguration kind was found in the YAML file"),
    ("", "join 10.0.0.1:6443 --token abcdef.0123456789abcdef", "without caCertHashes can be unsafe"),
    (V4 + "kind: ResetConfiguration\nunmountFlags: [MNT_LAZY]\n", "reset --config r.yaml", "unknown unmount flag"),
])
def test_configurations_kubeadm_refuses(text: str, argv: str, message: str) -> None:
    with pytest.raises(contract.ContractError) as err:
        check(text, shlex.split(argv), "1.33")
    assert message in str(err.value)


def test_node_names_are_lowercased_and_ecdsa_p384_arrives_in_1_34() -> None:
    check(JOIN.replace("NAME", "IP-10-0-1-5.EC2.Internal").replace("CAHASH", "sha256:" + "a" * 64),
          ["join", "--config", "j.yaml"], "1.31")
    check(INIT + "encryptionAlgorithm: ECDSA-P384\n", ["init", "--config", "i.yaml"], "1.34")
    check("", ["join", "10.0.0.1:6443", "--token", "abcdef.0123456789abcdef",
               "--discovery-token-ca-cert-hash", "sha256:" + "b" * 64], "1.31")


# --- preflight ----------------------------------------------------------------------------------------------------

CLUSTER = V4 + "kind: ClusterConfiguration\ncontrolPlaneEndpoint: 10.0.0.10:6443\n"
SHARED = ("ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt",
          "etcd/ca.key")


def host(tmp_path: Path, forward: str = "1") -> Path:
    (tmp_path / "proc/sys/net/ipv4").mkdir(parents=True)
    (tmp_path / "proc/sys/net/ipv4/ip_forward").write_text(forward + "\n")
    (tmp_path / "etc/kubernetes/manifests").mkdir(parents=True)
    for name in SHARED:
        (tmp_path / "etc/kubernetes/pki" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "etc/kubernetes/pki" / name).write_text("-")
    return tmp_path


def run_preflight(root: Path, text: str, argv: str, busy: Callable[[int], bool] = lambda port: False,
                  cluster: str = CLUSTER) -> list[str]:
    configs = contract.load_configs(text, "1.31")
    if "JoinConfiguration" in configs:
        configs.update(contract.load_configs(cluster, "1.31"))
    inv = contract.parse_command(shlex.split(argv), "1.31")
    return contract.preflight(inv, configs, root, "1.31", busy)


CP_JOIN = JOIN.replace("NAME", "n2").replace("CAHASH", "sha256:" + "a" * 64) + "controlPlane: {}\n"
WORKER = JOIN.replace("NAME", "n3").replace("CAHASH", "sha256:" + "a" * 64)
ETCD_ERROR = "[ERROR DirAvailable--var-lib-etcd]: /var/lib/etcd is not empty"


@pytest.mark.parametrize(("text", "argv"), [(INIT, "init --config i.yaml"), (CP_JOIN, "join --config j.yaml"),
                                            (INIT, "init phase preflight --config i.yaml")])
@pytest.mark.parametrize("etcd_dir", ["absent", "empty", "lost+found"])
def test_the_etcd_data_dir_must_be_empty(tmp_path: Path, text: str, argv: str, etcd_dir: str) -> None:
    root = host(tmp_path)
    if etcd_dir != "absent":
        (root / "var/lib/etcd").mkdir(parents=True)
    if etcd_dir == "lost+found":
        (root / "var/lib/etcd/lost+found").mkdir()
    errors = run_preflight(root, text, argv)
    assert errors == ([ETCD_ERROR] if etcd_dir == "lost+found" else [])


def test_the_etcd_data_dir_checked_is_the_configured_one(tmp_path: Path) -> None:
    root = host(tmp_path)
    (root / "var/lib/etcd/lost+found").mkdir(parents=True)
    text = INIT + "etcd:\n  local:\n    dataDir: /var/lib/etcd/data\n"
    assert run_preflight(root, text, "init --config i.yaml") == []
    (root / "var/lib/etcd/data/member").mkdir(parents=True)
    assert run_preflight(root, text, "init --config i.yaml") == [
        "[ERROR DirAvailable--var-lib-etcd-data]: /var/lib/etcd/data is not empty"]
    join_cluster = CLUSTER + "etcd:\n  local:\n    dataDir: /var/lib/etcd/data\n"
    assert run_preflight(root, CP_JOIN, "join --config j.yaml", cluster=join_cluster) == [
        "[ERROR DirAvailable--var-lib-etcd-data]: /var/lib/etcd/data is not empty"]


@pytest.mark.parametrize(("existing", "text", "error"), [
    ("etc/kubernetes/kubelet.conf", WORKER,
     "[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists"),
    ("etc/kubernetes/bootstrap-kubelet.conf", CP_JOIN, "[ERROR FileAvailable--etc-kubernetes-bootstrap-kubelet.conf]: "
                                                       "/etc/kubernetes/bootstrap-kubelet.conf already exists"),
    ("etc/kubernetes/manifests/etcd.yaml", CP_JOIN, "[ERROR FileAvailable--etc-kubernetes-manifests-etcd.yaml]: "
                                                    "/etc/kubernetes/manifests/etcd.yaml already exists"),
])
def test_files_left_by_an_earlier_run_fail_join(tmp_path: Path, existing: str, text: str, error: str) -> None:
    root = host(tmp_path)
    if text == WORKER:
        (root / "etc/kubernetes/pki/ca.crt").unlink()
    (root / existing).write_text("-")
    assert run_preflight(root, text, "join --config j.yaml") == [error]


def test_a_worker_join_needs_no_ca_file_but_refuses_one(tmp_path: Path) -> None:
    root = host(tmp_path)
    assert run_preflight(root, WORKER, "join --config j.yaml") == [
        "[ERROR FileAvailable--etc-kubernetes-pki-ca.crt]: /etc/kubernetes/pki/ca.crt already exists"]
    assert run_preflight(root, CP_JOIN, "join --config j.yaml") == []


@pytest.mark.parametrize(("text", "argv"), [(INIT, "init --config i.yaml"), (WORKER, "join --config j.yaml")])
@pytest.mark.parametrize(("forward", "error"), [
    ("0", "[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1"),
    ("", "[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1"),
])
def test_ip_forwarding_must_be_on(tmp_path: Path, text: str, argv: str, forward: str, error: str) -> None:
    root = host(tmp_path, forward)
    (root / "etc/kubernetes/pki/ca.crt").unlink()
    assert run_preflight(root, text, argv) == [error]


def test_ip_forwarding_is_checked_on_join_only_for_an_ip_endpoint(tmp_path: Path) -> None:
    root = host(tmp_path, "0")
    (root / "etc/kubernetes/pki/ca.crt").unlink()
    by_name = WORKER.replace("10.0.0.1:6443", "api.example.internal:6443")
    assert run_preflight(root, by_name, "join --config j.yaml") == []
    (root / "proc/sys/net/ipv4/ip_forward").unlink()
    assert run_preflight(root, INIT, "init --config i.yaml") == [
        "[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward does not exist"]


def test_bridge_netfilter_and_swap_do_not_fail(tmp_path: Path) -> None:
    root = host(tmp_path)
    (root / "proc/sys/net/bridge").mkdir(parents=True)
    (root / "proc/sys/net/bridge/bridge-nf-call-iptables").write_text("0\n")
    (root / "proc/swaps").write_text("Filename Type Size Used Priority\n/swapfile file 1024 0 -2\n")
    inv = contract.parse_command(["init", "--config", "i.yaml"], "1.31")
    report = contract.preflight_report(inv, contract.load_configs(INIT, "1.31"), root, "1.31", lambda p: False)
    assert report.errors == [] and report.warnings[0].startswith("[WARNING Swap]: swap is supported for cgroup v2")


@pytest.mark.parametrize(("text", "argv", "port"), [
    (INIT, "init --config i.yaml", 6443), (INIT, "init --config i.yaml", 10259), (INIT, "init --config i.yaml", 2379),
    (INIT, "init --config i.yaml", 10250), (WORKER, "join --config j.yaml", 10250),
    (CP_JOIN, "join --config j.yaml", 2380), (CP_JOIN, "join --config j.yaml", 10257),
])
def test_a_port_in_use_fails(tmp_path: Path, text: str, argv: str, port: int) -> None:
    root = host(tmp_path)
    if text == WORKER:
        (root / "etc/kubernetes/pki/ca.crt").unlink()
    errors = run_preflight(root, text, argv, lambda p: p == port)
    assert errors == [f"[ERROR Port-{port}]: Port {port} is in use"]


@pytest.mark.parametrize(("flag", "config_list", "left"), [
    ("--ignore-preflight-errors=DirAvailable--var-lib-etcd", None, ["Port-6443"]),
    ("--ignore-preflight-errors=dirAVAILABLE--var-lib-etcd,port-6443", None, []),
    ("--ignore-preflight-errors=all", None, []),
    ("", "[Port-6443]", ["DirAvailable--var-lib-etcd"]),
    ("--ignore-preflight-errors=Port-6443", "[DirAvailable--var-lib-etcd]", []),
    ("", None, ["Port-6443", "DirAvailable--var-lib-etcd"]),
])
def test_ignore_preflight_errors(tmp_path: Path, flag: str, config_list: str | None, left: list[str]) -> None:
    root = host(tmp_path)
    (root / "var/lib/etcd/lost+found").mkdir(parents=True)
    text = INIT.replace("name: n1", f"name: n1\n  ignorePreflightErrors: {config_list}") if config_list else INIT
    errors = run_preflight(root, text, f"init --config i.yaml {flag}", lambda p: p == 6443)
    assert [e.split("]")[0].removeprefix("[ERROR ") for e in errors] == left


def test_a_control_plane_join_needs_the_shared_certificates_or_a_key(tmp_path: Path) -> None:
    root = host(tmp_path)
    (root / "etc/kubernetes/pki/sa.key").unlink()
    with pytest.raises(contract.ContractError, match=r"sa\.key: no such file"):
        run_preflight(root, CP_JOIN, "join --config j.yaml")
    assert run_preflight(root, CP_JOIN.replace("controlPlane: {}", "controlPlane:\n  certificateKey: " + "0f" * 32),
                         "join --config j.yaml") == []
    with pytest.raises(contract.ContractError, match="stable controlPlaneEndpoint"):
        run_preflight(root, CP_JOIN, "join --config j.yaml", cluster=V4 + "kind: ClusterConfiguration\n")


def test_phases_other_than_preflight_run_no_checks(tmp_path: Path) -> None:
    root = host(tmp_path)
    (root / "var/lib/etcd/member").mkdir(parents=True)
    assert run_preflight(root, INIT, "init phase etcd local --config i.yaml", lambda p: True) == []
    assert run_preflight(root, INIT, "init --config i.yaml --skip-phases preflight", lambda p: True) == []


# --- kubeaws's control-plane boot, as the contract sees it ----------------------------------------------------------

def etcd_mount() -> str:
    """Where the boot scripts mount the member's etcd volume (a fresh ext4 filesystem holds lost+found)."""
    m = re.search(r'ETCD_MOUNT="\$ROOT(/[^"]+)"', (TEMPLATES / "etcd.sh.j2").read_text())
    assert m, "etcd.sh.j2 no longer defines ETCD_MOUNT"
    return m.group(1)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("member", ["first (init)", "other (join --control-plane)"])
def test_kubeaws_control_plane_on_a_freshly_formatted_etcd_volume(tmp_path: Path, version: str, member: str) -> None:
    """control-plane.sh mounts the member's EBS volume, creates etcd's data directory (`install -d`) and installs
    the shared PKI, then runs `kubeadm init --config init.yaml --skip-token-print` on the first member and
    `kubeadm join --config join.yaml` on the others; the preflight of both must pass with lost+found at the
    root of the freshly formatted volume."""
    root = host(tmp_path)
    (root / etcd_mount().lstrip("/") / "lost+found").mkdir(parents=True)
    files = rendered(version)
    init = contract.load_configs(fill(files["init.yaml"]), version)
    data_dir = init["ClusterConfiguration"]["etcd"]["local"]["dataDir"]
    (root / data_dir.lstrip("/")).mkdir(parents=True, exist_ok=True)
    if member.startswith("first"):
        argv, configs = ["init", "--config", "/etc/kubeaws/run/init.yaml", "--skip-token-print"], init
    else:
        argv = ["join", "--config", "/etc/kubeaws/run/join.yaml"]
        configs = contract.load_configs(fill(files["join-control-plane.yaml"]), version)
    inv = contract.parse_command(argv, version)
    contract.validate(configs, inv, version)
    if member.startswith("other"):
        configs = {**configs, "ClusterConfiguration": init["ClusterConfiguration"]}
    assert contract.preflight(inv, configs, root, version, lambda port: False) == []
    (root / data_dir.lstrip("/") / "lost+found").mkdir(exist_ok=True)  # the volume mounted on the data dir itself
    assert contract.preflight(inv, configs, root, version, lambda port: False) == [
        f"[ERROR DirAvailable-{data_dir.replace('/', '-')}]: {data_dir} is not empty"]


def test_not_emulated_checks_are_listed_with_a_reason() -> None:
    assert {"IsPrivilegedUser", "CRI", "SystemVerification", "Service-Kubelet", "NumCPU / Mem"} <= set(
        contract.NOT_EMULATED)
    assert all(reason for reason in contract.NOT_EMULATED.values())
