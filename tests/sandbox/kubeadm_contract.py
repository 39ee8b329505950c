"""kubeadm's contract for the bootstrap sandbox: what a real kubeadm 1.30-1.37 refuses, without any effect.

`parse_command` (cobra/pflag + kubeadm's argument rules), `load_configs` (strict decoding of the config file),
`validate` (defaulting + apis/kubeadm/validation, plus the checks kubeadm delegates to discovery and the kubelet)
and `preflight` (the file/port preflight checks over a sandbox root). Tables: tests/sandbox/kubeadm_flags.py
(commands, flags, phases, feature gates) and tests/sandbox/kubeadm_types.py (config API fields).

Upstream sources (kubernetes/kubernetes unless noted; the source index stores file versions by the commit that
changed them and has none at the v1.3x.0 tags, so per-minor differences come from release notes, see the
table modules):
- apis/kubeadm/validation/validation.go at 00d24de699fe4409b5829a5e51b73c1fc7bcba12 (validation rules, messages,
  ValidateMixedArguments, ValidateIgnorePreflightErrors);
- util/config/common.go at 1601b9e27d8570364d9a1b94be16a0ca7b744a7e (validateSupportedVersion, known GVKs);
- preflight/checks.go at 00b6a4c7afdbd95d9ef5b5f3cada04ac15b0c135 (InitNodeChecks, JoinNodeChecks, RunChecks,
  check names and messages) and checks_linux.go at 039c72e87d0f15f5d271b39a78d5ca873b819f5d (addIPv4Checks:
  ip_forward only; bridge-nf-call-iptables was dropped before 1.30 by #123464, merged 2024-02-23); Swap is a
  WARNING since #104854, message per #120198 (1.30) and #125157 (1.31+); ip_forward/IPv6 forwarding are
  checked only for the address families in use (#115420); join checks DirAvailable--etc-kubernetes-manifests
  no more (#104942).

Preflight checks deliberately not emulated (they need a real host; NOT_EMULATED holds the same list):
IsPrivilegedUser (the sandbox runs unprivileged), CRI (a runtime on the CRI socket), SystemVerification
(kernel, its config, cgroups), FileExisting-<binary> (the real $PATH), Service-Kubelet (systemd),
KubeletVersion (runs the kubelet binary), Hostname, Firewalld, HTTPProxy and HTTPProxyCIDR (warnings only:
resolver, systemd, proxy environment), NumCPU and Mem (the machine's size), ImagePull (pulls through the
runtime), ExternalEtcdVersion (an external etcd over the network). Upgrade's preflight (CreateJob, the
control-plane version skew) and reset's (IsPrivilegedUser, the confirmation prompt) are not emulated either.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.sandbox import kubeadm_flags as kf
from tests.sandbox import kubeadm_types as kt


class ContractError(Exception):
    """What kubeadm prints before it exits non-zero (message close to kubeadm's own)."""


@dataclass(frozen=True)
class Invocation:
    path: tuple[str, ...]
    flags: dict[str, list[str]]
    args: tuple[str, ...]
    warnings: tuple[str, ...] = ()  # what kubeadm prints and goes on (deprecated flags)
    help_only: bool = False  # kubeadm prints the help and exits 0 without doing anything

    def flag(self, name: str) -> str | None:
        values = self.flags.get(name)
        return values[-1] if values else None

    def flag_list(self, name: str) -> list[str]:
        return [v for value in self.flags.get(name, []) for v in value.split(",") if v]


def minor_of(version: str) -> int:
    """"1.30", "v1.30.2" or "1.30.2" -> 30 (the contract covers 1.30-1.37)."""
    m = re.fullmatch(r"v?1\.(\d+)(\.\d+.*)?", version)
    if not m or not 30 <= int(m.group(1)) <= 37:
        raise ValueError(f"not a Kubernetes minor between 1.30 and 1.37: {version!r}")
    return int(m.group(1))


# --- command line ---------------------------------------------------------------------------------------------

def parse_command(argv: list[str], version: str) -> Invocation:
    """`kubeadm ARGV...` as kubeadm parses it (argv without the program name): cobra's command lookup, pflag's
    flag parsing, argument counts, then ValidateMixedArguments, ValidateIgnorePreflightErrors, the workflow
    runner's --skip-phases names and the --feature-gates keys."""
    try:
        p = kf.parse(argv, minor_of(version))
    except kf.FlagError as exc:
        raise ContractError(str(exc)) from exc
    return Invocation(p.path, p.flags, p.args, p.warnings, p.help_only)


def check_ignore_list(items: list[str]) -> set[str]:
    try:
        return kf.check_ignore_list(items)
    except kf.FlagError as exc:
        raise ContractError(str(exc)) from exc


def check_skip_phases(names: list[str], workflow: kf.Cmd, minor: int) -> None:
    try:
        kf.check_skip_phases(names, workflow, minor)
    except kf.FlagError as exc:
        raise ContractError(str(exc)) from exc


# --- config files ---------------------------------------------------------------------------------------------

def load_configs(text: str, version: str, *, strict: bool = True) -> dict[str, dict[str, Any]]:
    """Multi-document YAML -> {kind: document}, decoded like `kubeadm config validate` (strict=True) or like
    `kubeadm init/join --config` (strict=False: unknown and duplicate fields are only warned about)."""
    return load_configs_with_warnings(text, version, strict=strict)[0]


def load_configs_with_warnings(text: str, version: str, *, strict: bool = True
                               ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """load_configs, with what kubeadm only warns about (deprecated API versions; unknown fields if not strict)."""
    try:
        return kt.load_documents(text, minor_of(version), strict=strict)
    except kt.ConfigError as exc:
        raise ContractError(str(exc)) from exc


# --- validation (defaulting + apis/kubeadm/validation + what discovery and the kubelet refuse) -----------------

_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                  f"validation is '{_SUBDOMAIN}')")
_QUALIFIED = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_IMAGE_REPO = re.compile(r"[a-z0-9]+([._-][a-z0-9]+)*(\.[a-z0-9]+([._-][a-z0-9]+)*)*(:\d+)?"
                         r"(/[a-z0-9]+([._]|__|-+)?[a-z0-9]*)*")
_VERSION = re.compile(r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)([-0-9a-zA-Z_.+]*)?")
_LABELS = re.compile(r"(stable|latest|latest-\d+(\.\d+)?|stable-\d+(\.\d+)?|ci/.+|release/.+)")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_UNMOUNT_FLAGS = ("MNT_FORCE", "MNT_DETACH", "MNT_EXPIRE", "UMOUNT_NOFOLLOW")
_TOKEN_USAGES = ("signing", "authentication")
_ENCRYPTION = {"RSA-2048": 31, "RSA-3072": 31, "RSA-4096": 31, "ECDSA-P256": 31, "ECDSA-P384": 34}  # #131677


def _quote(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _invalid(path: str, value: Any, detail: str) -> str:
    return f"{path}: Invalid value: {_quote(value)}: {detail}"


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """netutils.ParseIPSloppy: like net.ParseIP, leading zeros allowed in IPv4."""
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", text):
        text = ".".join(str(int(p)) for p in text.split("."))
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _subdomain(value: str) -> list[str]:
    errs = ["must be no more than 253 characters"] if len(value) > 253 else []
    return errs + ([] if re.fullmatch(_SUBDOMAIN, value) else [_SUBDOMAIN_MSG])


def _host_port_ok(endpoint: str) -> bool:
    """kubeadmutil.ParseHostPort: an IP or DNS-1123 subdomain, optional port 1-65535."""
    m = re.fullmatch(r"\[(.+)\]:(.*)|([^:]+):([^:]*)", endpoint)
    host, port = (m.group(1) or m.group(3), m.group(2) if m.group(1) else m.group(4)) if m else (endpoint, None)
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        return False
    return _ip(host) is not None or not _subdomain(host)


def _args_list(args: Any) -> list[dict[str, Any]]:
    """extraArgs / kubeletExtraArgs as name/value pairs (a v1beta3 map or a v1beta4 list)."""
    if isinstance(args, dict):
        return [{"name": k, "value": v} for k, v in args.items()]
    return list(args or [])


def _cidrs(path: str, text: str, minimum: int, service: bool) -> list[str]:
    try:
        nets = [ipaddress.ip_network(c.strip(), strict=False) for c in text.split(",")]
    except ValueError:
        return [_invalid(path, text, "couldn't parse subnet")]
    errs = []
    if len(nets) > 2 or (len(nets) == 2 and nets[0].version == nets[1].version):
        errs.append(_invalid(path, text, "expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for "
                                         "dual-stack networking"))
    for net in nets:
        if net.num_addresses < minimum:
            errs.append(_invalid(path, str(net), f"subnet with {net.num_addresses} address(es) is too small, the "
                                                 f"minimum is {minimum}"))
        bits = net.max_prefixlen - net.prefixlen
        if service and bits > 20:
            errs.append(_invalid(path, str(net), f"specified service subnet is too large; for "
                                                 f"{net.max_prefixlen}-bit addresses, the mask must be >= "
                                                 f"{net.max_prefixlen - 20}"))
        node_mask = 64 if net.version == 6 else 24
        if not service and net.prefixlen > node_mask:
            errs.append(_invalid(path, str(net), f"the size of pod subnet with mask {net.prefixlen} is smaller "
                                                 f"than the size of node subnet with mask {node_mask}"))
        elif not service and node_mask - net.prefixlen > 16:
            errs.append(_invalid(path, str(net), f"pod subnet mask ({net.prefixlen}) and node-mask ({node_mask}) "
                                                 "difference is greater than 16"))
    return errs


def _registration(reg: dict[str, Any], path: str, warnings: list[str]) -> list[str]:
    errs: list[str] = []
    name = str(reg.get("name") or "").strip().lower()  # nodeutil.GetHostname; empty: the host's name
    for problem in _subdomain(name) if name else []:
        errs.append(_invalid(f"{path}.name", name, problem))
    socket = str(reg.get("criSocket") or "")
    if socket and "://" not in socket:
        warnings.append(f'Usage of CRI endpoints without URL scheme is deprecated: prepending "unix://" to {socket}')
        socket = "unix://" + socket
    if socket and not socket.startswith("unix://"):
        errs.append(_invalid(f"{path}.criSocket", socket, f'only URL scheme "unix" is supported, got '
                                                          f'"{socket.partition(":")[0]}"'))
    for i, arg in enumerate(_args_list(reg.get("kubeletExtraArgs"))):
        if not arg.get("name"):
            errs.append(_invalid(f"{path}.kubeletExtraArgs", f"index {i}", "argument has no name"))
    if reg.get("imagePullPolicy") not in (None, "", "Always", "IfNotPresent", "Never"):
        errs.append(_invalid(f"{path}.imagePullPolicy", reg["imagePullPolicy"], "invalid pull policy"))
    return errs


def _kubelet_side(reg: dict[str, Any], path: str) -> list[str]:
    """What the kubelet refuses when kubeadm starts it with these settings (kubelet-start): --node-ip,
    --node-labels, and the taints it registers with (pkg/util/taints ParseTaint)."""
    errs: list[str] = []
    for arg in _args_list(reg.get("kubeletExtraArgs")):
        name, value = arg.get("name"), str(arg.get("value") or "")
        if name == "node-ip" and value and any(_ip(v) is None for v in value.split(",")):
            errs.append(f'{path}.kubeletExtraArgs: kubelet --node-ip="{value}": invalid node IP')
        if name == "node-labels" and value:
            for pair in value.split(","):
                key, eq, val = pair.partition("=")
                if not eq or not _QUALIFIED.fullmatch(key.rpartition("/")[2]) or (
                        val and not _QUALIFIED.fullmatch(val)):
                    errs.append(f'{path}.kubeletExtraArgs: kubelet --node-labels: invalid label "{pair}"')
    for i, taint in enumerate(reg.get("taints") or []):
        if taint.get("effect") not in _TAINT_EFFECTS:
            errs.append(f"{path}.taints[{i}]: invalid taint effect: {taint.get('effect')}, unsupported taint effect")
        if not _QUALIFIED.fullmatch(str(taint.get("key") or "").rpartition("/")[2]):
            errs.append(_invalid(f"{path}.taints[{i}].key", taint.get("key"), "name part must consist of "
                                 "alphanumeric characters, '-', '_' or '.'"))
    return errs


def _endpoint(ep: dict[str, Any], path: str) -> list[str]:
    address = str(ep.get("advertiseAddress") or "")
    if address and _ip(address) is None:  # SetAPIEndpointDynamicDefaults, before validation
        raise ContractError(f'couldn\'t use "{address}" as "apiserver-advertise-address", must be ipv4 or ipv6 '
                            "address")
    port = ep.get("bindPort") or 6443
    return [] if 0 < int(port) < 65536 else [_invalid(f"{path}.bindPort", port, "port number is not valid")]


def _certificate_key(key: Any, path: str) -> list[str]:
    if not key:
        return []
    if not re.fullmatch(r"([0-9a-fA-F]{2})*", str(key)):
        return [_invalid(path, key, "certificate key decoding error: encoding/hex: invalid byte")]
    return [] if len(str(key)) == 64 else [_invalid(path, key, f"invalid certificate key size {len(str(key)) // 2}"
                                                               ", the key must be an AES key of size 32")]


def _cluster(c: dict[str, Any], minor: int, warnings: list[str]) -> list[str]:
    errs: list[str] = []
    net = c.get("networking") or {}
    domain = net.get("dnsDomain") or "cluster.local"
    errs += [_invalid("networking.dnsDomain", domain, p) for p in _subdomain(domain)]
    errs += _cidrs("networking.serviceSubnet", net.get("serviceSubnet") or "10.96.0.0/12", 10, True)
    if net.get("podSubnet"):
        errs += _cidrs("networking.podSubnet", net["podSubnet"], 4, False)
    for comp in ("apiServer", "controllerManager", "scheduler"):
        for i, arg in enumerate(_args_list((c.get(comp) or {}).get("extraArgs"))):
            if not arg.get("name"):
                errs.append(_invalid(f"{comp}.extraArgs", f"index {i}", "argument has no name"))
    for san in (c.get("apiServer") or {}).get("certSANs") or []:
        if _subdomain(san) and _subdomain(san.removeprefix("*.")) and _ip(san) is None:
            errs.append(_invalid("apiServer.certSANs", san, "altname is not a valid IP address, DNS label or a DNS "
                                                             "label with subdomain wildcards"))
    if not str(c.get("certificatesDir") or "/etc/kubernetes/pki").startswith("/"):
        errs.append(_invalid("certificatesDir", c["certificatesDir"], "path is not absolute"))
    for gate in c.get("featureGates") or {}:
        if kf.feature_gate_status(gate, minor) != "known":
            errs.append(_invalid("featureGates", c["featureGates"], f"{gate} is not a valid feature name."))
    endpoint = str(c.get("controlPlaneEndpoint") or "")
    if endpoint and not _host_port_ok(endpoint):
        errs.append(_invalid("controlPlaneEndpoint", endpoint, "endpoint is not valid"))
    local = (c.get("etcd") or {}).get("local") or {}
    for path, repo in (("imageRepository", c.get("imageRepository")),
                       ("dns.imageRepository", (c.get("dns") or {}).get("imageRepository")),
                       ("etcd.local.imageRepository", local.get("imageRepository"))):
        if repo and not _IMAGE_REPO.fullmatch(str(repo)):
            errs.append(_invalid(path, repo, "invalid image repository format"))
    etcd = c.get("etcd") or {}
    if etcd.get("local") is not None and etcd.get("external") is not None:
        errs.append(_invalid("etcd", "", ".Etcd.Local and .Etcd.External are mutually exclusive"))
    if not str(local.get("dataDir") or "/var/lib/etcd").startswith("/"):
        errs.append(_invalid("etcd.local.dataDir", local["dataDir"], "path is not absolute"))
    algorithm = c.get("encryptionAlgorithm")
    if algorithm and _ENCRYPTION.get(algorithm, 99) > minor:
        known = sorted(k for k, v in _ENCRYPTION.items() if v <= minor)
        errs.append(_invalid("encryptionAlgorithm", algorithm, f'Invalid encryption algorithm "{algorithm}". Must '
                                                               f"be one of [{' '.join(known)}]"))
    version = str(c.get("kubernetesVersion") or "")
    if version and not _LABELS.fullmatch(version):
        m = _VERSION.fullmatch(version)
        if not m:
            raise ContractError(f'version "{version}" doesn\'t match patterns for neither semantic version nor '
                                "labels (stable, latest, ...)")
        if (int(m.group(1)), int(m.group(2))) < (1, minor - 1):
            raise ContractError("this version of kubeadm only supports deploying clusters with the control plane "
                                f"version >= 1.{minor - 1}.0. Current version: {version}")
    return errs


def _discovery(d: dict[str, Any]) -> list[str]:
    errs: list[str] = []
    token, file = d.get("bootstrapToken"), d.get("file")
    if token is None and file is None:
        errs.append(_invalid("discovery", "", "bootstrapToken or file must be set"))
    if token is not None and file is not None:
        errs.append(_invalid("discovery", "", "bootstrapToken and file cannot both be set"))
    if token is not None:
        if not token.get("apiServerEndpoint"):
            errs.append("discovery.bootstrapToken: Required value: APIServerEndpoint is not set")
        if not token.get("caCertHashes") and not token.get("unsafeSkipCAVerification"):
            errs.append(_invalid("discovery.bootstrapToken.caCertHashes", "", "using token-based discovery without "
                                 "caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm "
                                 "config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue"))
        value = str(token.get("token") or "")
        if not kt.TOKEN_RE.match(value):
            errs.append(_invalid("discovery.bootstrapToken.token", value, "the bootstrap token is invalid"))
        endpoint = str(token.get("apiServerEndpoint") or "")
        if endpoint and not re.fullmatch(r"(\[[^\]]+\]|[^:\[\]]*):[^:]*", endpoint):
            errs.append(_invalid("discovery.bootstrapToken.apiServerEndpoint", endpoint, "missing port in address"))
    tls = str(d.get("tlsBootstrapToken") or (token or {}).get("token") or "")
    if (token is not None or d.get("tlsBootstrapToken")) and not kt.TOKEN_RE.match(tls):
        errs.append(_invalid("discovery.tlsBootstrapToken", tls, "the bootstrap token is invalid"))
    return errs


def _ca_pins(token: dict[str, Any]) -> None:
    """pubkeypin.Set.Allow, run by token discovery before anything is fetched from the cluster."""
    for pin in token.get("caCertHashes") or []:
        form, sep, value = str(pin).partition(":")
        if not sep or ":" in value:
            problem = 'invalid hash, expected "format:hex-value". Known format(s) are: sha256'
        elif form.lower() != "sha256":
            problem = f'unknown hash format "{form}". Known format(s) are: sha256'
        elif len(value) // 2 != 32:
            problem = f'invalid hash "{pin}", expected a 32 byte SHA-256 hash, found {len(value) // 2} bytes'
        elif not re.fullmatch(r"[0-9a-fA-F]+", value):
            problem = f'invalid hash "{pin}", could not decode SHA-256 from hex'
        else:
            continue
        raise ContractError(f"invalid discovery token CA certificate hash: {problem}")


def _aggregate(errs: list[str]) -> None:
    if errs:
        raise ContractError(errs[0] if len(errs) == 1 else f"[{', '.join(errs)}]")


def _from_flags(inv: Invocation) -> dict[str, dict[str, Any]]:
    """The configuration kubeadm builds from flags when no --config is given."""
    f = inv.flag
    reg = {k: v for k, v in (("name", f("node-name")), ("criSocket", f("cri-socket"))) if v}
    if inv.path[0] == "join":
        disc: dict[str, Any] = {}
        if f("discovery-file"):
            disc["file"] = {"kubeConfigPath": f("discovery-file")}
        elif inv.args or f("discovery-token") or f("token"):
            disc["bootstrapToken"] = {
                "apiServerEndpoint": inv.args[0] if inv.args else "", "token": f("discovery-token") or f("token"),
                "caCertHashes": inv.flag_list("discovery-token-ca-cert-hash"),
                "unsafeSkipCAVerification": f("discovery-token-unsafe-skip-ca-verification") == "true"}
        if f("tls-bootstrap-token") or f("token"):
            disc["tlsBootstrapToken"] = f("tls-bootstrap-token") or f("token")
        join: dict[str, Any] = {"discovery": disc, "nodeRegistration": reg}
        if f("control-plane") == "true":
            join["controlPlane"] = {"localAPIEndpoint": {"advertiseAddress": f("apiserver-advertise-address"),
                                                         "bindPort": int(f("apiserver-bind-port") or "6443", 0)},
                                    "certificateKey": f("certificate-key")}
        return {"JoinConfiguration": join}
    init: dict[str, Any] = {"nodeRegistration": reg, "certificateKey": f("certificate-key"),
                            "localAPIEndpoint": {"advertiseAddress": f("apiserver-advertise-address"),
                                                 "bindPort": int(f("apiserver-bind-port") or "6443", 0)}}
    if f("token"):
        init["bootstrapTokens"] = [{"token": f("token")}]
    cluster = {"kubernetesVersion": f("kubernetes-version"), "controlPlaneEndpoint": f("control-plane-endpoint"),
               "imageRepository": f("image-repository"), "certificatesDir": f("cert-dir"),
               "networking": {"podSubnet": f("pod-network-cidr"), "serviceSubnet": f("service-cidr"),
                              "dnsDomain": f("service-dns-domain")},
               "apiServer": {"certSANs": inv.flag_list("apiserver-cert-extra-sans")}}
    return {"InitConfiguration": init, "ClusterConfiguration": cluster}


def validate(configs: dict[str, dict[str, Any]], inv: Invocation, version: str) -> None:
    """kubeadm's checks between loading the configuration and running the first phase."""
    validate_with_warnings(configs, inv, version)


def validate_with_warnings(configs: dict[str, dict[str, Any]], inv: Invocation, version: str) -> list[str]:
    minor = minor_of(version)
    warnings: list[str] = []
    command = inv.path[0] if inv.path else ""
    if inv.help_only or command not in ("init", "join", "reset", "upgrade", "config"):
        return warnings
    if command == "config" and inv.path[1:] != ("validate",):
        return warnings
    if command in ("init", "join") and not inv.flag("config"):
        configs = _from_flags(inv)
    errs: list[str] = []
    if command in ("init", "config") and ("InitConfiguration" in configs or command == "init"):
        init, cluster = configs.get("InitConfiguration") or {}, configs.get("ClusterConfiguration") or {}
        errs += _registration(init.get("nodeRegistration") or {}, "nodeRegistration", warnings)
        for i, token in enumerate(init.get("bootstrapTokens") or []):
            path = f"bootstrapTokens[{i}]"
            if not kt.TOKEN_RE.match(str(token.get("token") or "")):
                errs.append(_invalid(f"{path}.token", token.get("token"), "the bootstrap token is invalid"))
            errs += [_invalid(f"{path}.usages", token["usages"], f'invalid bootstrap token usage string: "{u}"')
                     for u in token.get("usages") or [] if u not in _TOKEN_USAGES]
            if token.get("ttl") and token.get("expires"):
                errs.append(_invalid(path, "", "the BootstrapToken .TTL and .Expires fields are mutually exclusive"))
        errs += _cluster(cluster, minor, warnings)
        errs += _endpoint(init.get("localAPIEndpoint") or {}, "localAPIEndpoint")
        errs += _certificate_key(init.get("certificateKey"), "certificateKey")
        errs += _kubelet_side(init.get("nodeRegistration") or {}, "nodeRegistration")
        _skip_from_config(init, kf.INIT, minor)
    if command in ("join", "config") and ("JoinConfiguration" in configs or command == "join"):
        if "JoinConfiguration" not in configs:
            raise ContractError("no JoinConfiguration kind was found in the YAML file")
        join = configs["JoinConfiguration"]
        errs += _discovery(join.get("discovery") or {})
        errs += _registration(join.get("nodeRegistration") or {}, "nodeRegistration", warnings)
        control = join.get("controlPlane")
        if control is not None:
            errs += _endpoint(control.get("localAPIEndpoint") or {}, "controlPlane.localAPIEndpoint")
            errs += _certificate_key(control.get("certificateKey"), "controlPlane.certificateKey")
        ca = str(join.get("caCertPath") or "/etc/kubernetes/pki/ca.crt")
        if not ca.startswith("/") or not ca.endswith(".crt"):
            errs.append(_invalid("caCertPath", ca, "the ca certificate path must be an absolute path"))
        _aggregate(errs)
        errs += _kubelet_side(join.get("nodeRegistration") or {}, "nodeRegistration")
        _skip_from_config(join, kf.JOIN, minor)
        if (join.get("discovery") or {}).get("bootstrapToken"):
            _ca_pins(join["discovery"]["bootstrapToken"])
    if command in ("reset", "config") and "ResetConfiguration" in configs:
        reset = configs["ResetConfiguration"]
        socket = str(reset.get("criSocket") or "")
        if socket and not socket.startswith("unix://") and "://" in socket:
            errs.append(_invalid("criSocket", socket, 'only URL scheme "unix" is supported'))
        if not str(reset.get("certificatesDir") or "/etc/kubernetes/pki").startswith("/"):
            errs.append(_invalid("certificatesDir", reset["certificatesDir"], "path is not absolute"))
        errs += [_invalid("unmountFlags", f"index {i}", f"unknown unmount flag {flag}")
                 for i, flag in enumerate(reset.get("unmountFlags") or []) if flag not in _UNMOUNT_FLAGS]
    if command == "upgrade" and "UpgradeConfiguration" in configs:
        upgrade = configs["UpgradeConfiguration"]
        for part in ("apply", "node"):
            section = upgrade.get(part) or {}
            directory = str((section.get("patches") or {}).get("directory") or "/")
            if not directory.startswith("/"):
                errs.append(_invalid(f"{part}.patches.directory", directory, "path is not absolute"))
            if section.get("imagePullPolicy") not in (None, "", "Always", "IfNotPresent", "Never"):
                errs.append(_invalid(f"{part}.imagePullPolicy", section["imagePullPolicy"], "invalid pull policy"))
    _aggregate(errs)
    return warnings


def _skip_from_config(doc: dict[str, Any], workflow: kf.Cmd, minor: int) -> None:
    check_skip_phases(list(doc.get("skipPhases") or []), workflow, minor)


# --- preflight ----------------------------------------------------------------------------------------------------

NOT_EMULATED = {
    "IsPrivilegedUser": "the sandbox runs unprivileged by design; kubeaws's scripts run as root on a node",
    "CRI": "needs a container runtime answering on the CRI socket",
    "SystemVerification": "inspects the running kernel, its config and the cgroup hierarchy",
    "FileExisting-<binary>": "looks up conntrack/ip/iptables/mount/nsenter/... in the real $PATH",
    "Service-Kubelet": "asks systemd whether kubelet.service is enabled",
    "KubeletVersion": "runs the installed kubelet binary",
    "Hostname": "resolves the node name through the host's resolver (warnings only)",
    "Firewalld": "asks systemd about firewalld (warnings only)",
    "HTTPProxy / HTTPProxyCIDR": "read the proxy environment (warnings only)",
    "NumCPU / Mem": "read the machine's CPU count and memory",
    "ImagePull": "pulls images through the container runtime",
    "ExternalEtcdVersion": "queries an external etcd over the network (kubeaws uses local etcd)",
}
"""Checks kubeadm runs that the contract deliberately does not emulate, with the reason."""


@dataclass
class PreflightReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def preflight(inv: Invocation, configs: dict[str, dict[str, Any]], root: Path, version: str,
              port_in_use: Callable[[int], bool]) -> list[str]:
    """The ERROR lines kubeadm's preflight prints for `init`, `join` (worker and --control-plane) and their
    `phase preflight`, over the host root `root`, after --ignore-preflight-errors / ignorePreflightErrors.
    For `join --control-plane`, configs["ClusterConfiguration"] is the cluster's (kubeadm reads it from the
    kubeadm-config ConfigMap); without it kubeadm's defaults are used. Checks kubeadm runs that need a real
    host are listed in NOT_EMULATED. Raises ContractError for the control-plane join conditions that kubeadm
    reports outside the check list (no controlPlaneEndpoint, shared certificates missing)."""
    return preflight_report(inv, configs, root, version, port_in_use).errors


def preflight_report(inv: Invocation, configs: dict[str, dict[str, Any]], root: Path, version: str,
                     port_in_use: Callable[[int], bool]) -> PreflightReport:
    minor = minor_of(version)
    report = PreflightReport()
    command = inv.path[0] if inv.path else ""
    if inv.help_only or command not in ("init", "join") or (len(inv.path) > 1 and inv.path[2:] != ("preflight",)):
        return report
    if not inv.flag("config"):
        configs = {**configs, **_from_flags(inv)}
    doc = configs.get("InitConfiguration" if command == "init" else "JoinConfiguration") or {}
    if "preflight" in inv.flag_list("skip-phases") or (not inv.flag("skip-phases")
                                                       and "preflight" in (doc.get("skipPhases") or [])):
        return report
    reg = doc.get("nodeRegistration") or {}
    ignored = check_ignore_list(inv.flag_list("ignore-preflight-errors") + list(reg.get("ignorePreflightErrors")
                                                                                or []))
    host = _Host(root, port_in_use, minor)
    cluster = configs.get("ClusterConfiguration") or {}
    if command == "init":
        checks = host.control_plane(cluster, doc.get("localAPIEndpoint") or {}, secondary=False)
    else:
        checks = host.join_node(doc)
    _run(checks, ignored, report)
    if command == "join" and doc.get("controlPlane") is not None and not report.errors:
        _ready_for_control_plane(cluster, root, bool(doc["controlPlane"].get("certificateKey")))
        endpoint = doc["controlPlane"].get("localAPIEndpoint") or {}
        _run(host.control_plane(cluster, endpoint, secondary=True), ignored, report)
    return report


Check = tuple[str, list[str], list[str]]  # name, errors, warnings


def _run(checks: list[Check], ignored: set[str], report: PreflightReport) -> None:
    """RunChecks: an ignored check's errors become warnings (case-insensitive names, "all")."""
    for name, errors, warnings in checks:
        if "all" in ignored or name.lower() in ignored:
            warnings, errors = warnings + errors, []
        report.warnings += [f"[WARNING {name}]: {w}" for w in warnings]
        report.errors += [f"[ERROR {name}]: {e}" for e in errors]


class _Host:
    def __init__(self, root: Path, port_in_use: Callable[[int], bool], minor: int) -> None:
        self.root, self.port_in_use, self.minor = root, port_in_use, minor

    def at(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def port(self, port: int) -> Check:
        return f"Port-{port}", [f"Port {port} is in use"] if self.port_in_use(port) else [], []

    def file_available(self, path: str, label: str = "") -> Check:
        errors = [f"{path} already exists"] if self.at(path).exists() else []
        return label or "FileAvailable-" + path.replace("/", "-"), errors, []

    def file_existing(self, path: str, label: str) -> Check:
        return label, [] if self.at(path).exists() else [f"{path} doesn't exist"], []

    def dir_available(self, path: str) -> Check:
        p = self.at(path)
        busy = p.exists() and (not p.is_dir() or any(p.iterdir()))
        return "DirAvailable-" + path.replace("/", "-"), [f"{path} is not empty"] if busy else [], []

    def file_content(self, path: str, content: str) -> Check:
        p, name = self.at(path), "FileContent-" + path.replace("/", "-")
        if not p.is_file():
            return name, [f"{path} does not exist"], []
        ok = p.read_bytes()[: len(content)] == content.encode()
        return name, [] if ok else [f"{path} contents are not set to {content}"], []

    def swap(self) -> Check:
        p = self.at("/proc/swaps")
        on = p.is_file() and len(p.read_text().splitlines()) > 1
        message = ("swap is supported for cgroup v2 only; the NodeSwap feature gate of the kubelet is beta but "
                   "disabled by default" if self.minor <= 30 else
                   "swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. Please "
                   "refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, or disable swap "
                   "on the node")
        return "Swap", [], [message] if on else []

    def families(self, *texts: str) -> tuple[bool, bool]:
        v4 = v6 = False
        for text in texts:
            for item in (t.strip() for t in text.split(",") if t.strip()):
                ip = _ip(item.partition("/")[0])
                v4, v6 = v4 or (ip is not None and ip.version == 4), v6 or (ip is not None and ip.version == 6)
        return v4, v6

    def forwarding(self, v4: bool, v6: bool) -> list[Check]:
        return ([self.file_content("/proc/sys/net/ipv4/ip_forward", "1")] if v4 else []) + \
            ([self.file_content("/proc/sys/net/ipv6/conf/default/forwarding", "1")] if v6 else [])

    def common(self) -> list[Check]:
        """addCommonChecks, file and port parts (CRI, FileExisting-*, SystemVerification, Hostname,
        KubeletVersion, Service-Kubelet: NOT_EMULATED)."""
        return [self.swap(), self.port(10250)]

    def control_plane(self, cluster: dict[str, Any], endpoint: dict[str, Any], *, secondary: bool) -> list[Check]:
        """InitNodeChecks (secondary: the checks `join --control-plane` adds)."""
        manifests = "/etc/kubernetes/manifests"
        checks = [self.kubernetes_version(str(cluster.get("kubernetesVersion") or ""))]
        checks += [self.port(int(endpoint.get("bindPort") or 6443)), self.port(10259), self.port(10257)]
        checks += [self.file_available(f"{manifests}/{c}.yaml") for c in
                   ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")]
        net = cluster.get("networking") or {}
        if not secondary:
            checks += self.common()
            address = str(endpoint.get("advertiseAddress") or "")
            v4, v6 = self.families(net.get("serviceSubnet") or "10.96.0.0/12", net.get("podSubnet") or "", address)
            checks += self.forwarding(v4 or not address, v6)  # an empty address is the host's (IPv4 here)
        etcd = cluster.get("etcd") or {}
        if etcd.get("external") is None:
            data_dir = str((etcd.get("local") or {}).get("dataDir") or "/var/lib/etcd")
            checks += [self.port(2379), self.port(2380), self.dir_available(data_dir)]
        else:
            checks += [self.file_existing(str(etcd["external"][k]), "ExternalEtcdClientCertificates")
                       for k in ("caFile", "certFile", "keyFile") if etcd["external"].get(k)]
        return checks

    def join_node(self, join: dict[str, Any]) -> list[Check]:
        """JoinNodeChecks."""
        checks = [self.file_available("/etc/kubernetes/kubelet.conf"),
                  self.file_available("/etc/kubernetes/bootstrap-kubelet.conf"), *self.common()]
        if join.get("controlPlane") is None:
            checks.append(self.file_available(str(join.get("caCertPath") or "/etc/kubernetes/pki/ca.crt")))
        token = (join.get("discovery") or {}).get("bootstrapToken") or {}
        host = str(token.get("apiServerEndpoint") or "").rpartition(":")[0].strip("[]")
        checks += self.forwarding(*self.families(host))
        return checks

    def kubernetes_version(self, version: str) -> Check:
        m = _VERSION.fullmatch(version)
        newer = m is not None and (int(m.group(1)), int(m.group(2))) > (1, self.minor)
        return "KubernetesVersion", [], [f"Kubernetes version is greater than kubeadm version. Please consider to "
                                         f"upgrade kubeadm. Kubernetes version: {version.lstrip('v')}. Kubeadm "
                                         f"version: 1.{self.minor}.x"] if newer else []


def _ready_for_control_plane(cluster: dict[str, Any], root: Path, has_certificate_key: bool) -> None:
    """phases/join/preflight.go checkIfReadyForAdditionalControlPlane (+ certs.SharedCertificateExists)."""
    problem = ""
    if not cluster.get("controlPlaneEndpoint"):
        problem = "unable to add a new control plane instance to a cluster that doesn't have a stable " \
                  "controlPlaneEndpoint address"
    elif not has_certificate_key:
        pki = str(cluster.get("certificatesDir") or "/etc/kubernetes/pki")
        external = (cluster.get("etcd") or {}).get("external") is not None
        needed = ["ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key"] + \
            ([] if external else ["etcd/ca.crt", "etcd/ca.key"])
        missing = [f"{pki}/{n}" for n in needed if not (root / pki.lstrip("/") / n).is_file()]
        if missing:
            problem = f"couldn't load {missing[0]}: open {missing[0]}: no such file or directory"
    if problem:
        raise ContractError("error execution phase preflight: \nOne or more conditions for hosting a new control "
                            f"plane instance is not satisfied.\n\n{problem}\n\nPlease ensure that:\n* The cluster "
                            "has a stable controlPlaneEndpoint address.\n* The certificates that must be shared "
                            "among control plane instances are provided.\n")
