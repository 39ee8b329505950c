"""kubeadm's command tree, flags and phase workflows per Kubernetes minor (1.30-1.37), as data.

Sources (facts transcribed; no upstream code). The kubernetes/kubernetes source index keys file versions by
the commit that changed them and holds none at a v1.3x.0 tag, so the tables combine:
- files read in the index: apis/kubeadm/validation/validation.go at 00d24de699fe4409b5829a5e51b73c1fc7bcba12
  (MIXED_ALLOWED), cmd/phases/join/controlplanejoin.go in its post-1.34 shape (index file id 92597886:
  control-plane-join = all + mark-control-plane, etcd-join top level, getControlPlaneJoinPhaseFlags),
  cmd/options/constant.go at 07da603b59052036c00b4cb369b837c7336b50ee (flag names);
- the generated kubeadm reference on kubernetes.io (flag lists per command and phase), revisions "kubeadm
  reference for v1.29" (c4f8b770a0), "for v1.30" (1da3e56415), "for v1.31" (88f0080504), "for v1.34"
  (02f1b512e4), "for v1.35" (769e76a326), and the man pages generated from a 1.3x kubeadm (man.archlinux.org);
- pkg.go.dev / godocs.io renders of cmd/kubeadm/app/features at v1.30.1, v1.30.9, v1.33.0-alpha.0 and
  v1.34.0-rc.0, and of cmd/phases/join at v1.30 ("NewWaitControlPlanePhase added in v1.30.0") and
  v1.32.0-alpha.2 (etcd-join, kubelet-wait-bootstrap, wait-control-plane);
- the release notes (CHANGELOG-1.31 as indexed; PR pages) for what changed per minor:
    1.31  init phase kubelet-finalize enable-client-cert-rotation added, experimental-cert-rotation deprecated
          (#124419); join phase control-plane-join update-status removed (#124373); join phases etcd-join and
          kubelet-wait-bootstrap added for ControlPlaneKubeletLocalMode (#125582); --output/-o replaces
          --experimental-output on token list, certs check-expiration, config images list, upgrade plan
          (#124393); klog flags other than -v/--add-dir-header/--skip-headers removed (#125179); --yes allowed
          with --config (#125566); upgrade apply/plan --feature-gates deprecated (#125797); init phase certs sa
          accepts --config (#125396); UpgradeAddonsBeforeControlPlane removed (#124715).
    1.32  kubeadm upgrade apply phases and --skip-phases (#126032); upgrade node phases addon, post-upgrade
          (#127242); upgrade apply/plan --feature-gates and upgrade diff --*-manifest removed (#127123).
    1.35  join phase control-plane-join etcd gone (the v1.35 reference documents etcd-join; the v1.34 one still
          documents control-plane-join etcd).
  Later minors (1.36, 1.37): the newest reference/source read is applied unchanged.
Flag sets marked "unconfirmed" below are not in any reference page read; they are kept permissive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Flag:
    kind: str  # bool | string | strings | int32 | int | uint | duration | level
    shorthand: str | None = None
    since: int = 0
    until: int = 99
    deprecated: str | None = None


def _v(kind: str, shorthand: str | None = None, since: int = 0, until: int = 99, deprecated: str | None = None
       ) -> tuple[Flag, ...]:
    return (Flag(kind, shorthand, since, until, deprecated),)


_S, _B, _L = "string", "bool", "strings"
#: Flag name (a "@variant" suffix selects a per-command definition) -> its definitions over the minors.
FLAGS: dict[str, tuple[Flag, ...]] = {
    **{n: _v(_S) for n in (
        "apiserver-advertise-address", "cert-dir", "certificate-key", "config", "control-plane-endpoint",
        "cri-socket", "image-repository", "kubernetes-version", "node-name", "patches", "pod-network-cidr",
        "service-cidr", "service-dns-domain", "token", "kubeconfig", "kubeconfig-dir", "discovery-file",
        "discovery-token", "tls-bootstrap-token", "feature-gates", "description", "new-config", "old-config",
        "client-name", "rootfs")},
    **{n: _v(_L) for n in ("apiserver-cert-extra-sans", "ignore-preflight-errors", "skip-phases",
                           "discovery-token-ca-cert-hash", "groups", "usages", "org", "component-configs")},
    **{n: _v(_B) for n in (
        "dry-run", "skip-certificate-key-print", "skip-token-print", "upload-certs", "control-plane",
        "discovery-token-unsafe-skip-ca-verification", "cleanup-tmp-dir", "print-join-command",
        "allow-missing-template-keys", "show-managed-fields", "allow-experimental-upgrades",
        "allow-release-candidate-upgrades", "certificate-renewal", "etcd-upgrade", "print-config",
        "print-manifest", "allow-experimental-api", "add-dir-header", "skip-headers")},
    "help": _v(_B, "h"),
    "v": _v("level", "v"),
    "force": _v(_B, "f"),
    "yes": _v(_B, "y"),
    "context-lines": _v("int", "c"),
    "apiserver-bind-port": _v("int32"),
    "token-ttl": _v("duration"), "ttl": _v("duration"), "validity-period": _v("duration"),
    "output": _v(_S, "o", since=31),
    "output@version": _v(_S, "o"),
    "experimental-output": (Flag(_S, "o", until=30),
                            Flag(_S, None, since=31, deprecated="please use --output instead")),
    "feature-gates@upgrade": _v(_S, until=31),
    "skip-phases@32": _v(_L, since=32),
    **{n: _v(_S, until=31) for n in ("api-server-manifest", "controller-manager-manifest", "scheduler-manifest")},
    # klog flags kubeadm still accepted before 1.31 (#125179 lists them as removed).
    **{n: _v(_S, until=30) for n in ("log-backtrace-at", "log-dir", "log-file", "stderrthreshold", "vmodule")},
    **{n: _v(_B, until=30) for n in ("alsologtostderr", "logtostderr", "one-output", "skip-log-headers")},
    "log-file-max-size": _v("uint", until=30),
}

#: Persistent flags of the root command (cmd/kubeadm/app/cmd/cmd.go; klog flags from app/kubeadm.go).
GLOBAL_FLAGS: tuple[str, ...] = (
    "help", "rootfs", "v", "add-dir-header", "skip-headers", "alsologtostderr", "log-backtrace-at", "log-dir",
    "log-file", "log-file-max-size", "logtostderr", "one-output", "skip-log-headers", "stderrthreshold", "vmodule")

#: ValidateMixedArguments (apis/kubeadm/validation/validation.go, read at 00d24de6): flags allowed with --config,
#: besides every "skip-*" flag. "yes" from 1.31 (#125566).
MIXED_ALLOWED: dict[str, int] = {n: 0 for n in (
    "config", "ignore-preflight-errors", "dry-run", "kubeconfig", "node-name", "kubeconfig-dir", "upload-certs",
    "print-join-command", "rootfs", "v", "log-file")} | {"yes": 31}


@dataclass(frozen=True)
class Cmd:
    flags: tuple[str, ...] = ()
    sub: Mapping[str, Cmd | tuple[Cmd, ...]] = field(default_factory=dict)  # a tuple: variants over the minors
    args: tuple[int, int | None] = (0, 0)  # (min, max) positional args; max None = unbounded
    since: int = 0
    until: int = 99
    group: bool = False  # only meant to hold subcommands
    persistent: tuple[str, ...] = ()  # flags inherited by the subcommands
    mixed: bool = False  # ValidateMixedArguments runs for it (and for its phases)
    workflow: bool = False  # has `phase` subcommands and --skip-phases
    phases_since: int = 0  # first minor with the `phase` subcommand
    deprecated: str | None = None


def P(*flags: str, sub: Mapping[str, Cmd | tuple[Cmd, ...]] | None = None, since: int = 0, until: int = 99,
      args: int = 0, deprecated: str | None = None) -> Cmd:
    """A workflow phase: its InheritFlags, its sub-phases, the minors that have it."""
    return Cmd(flags=flags, sub=sub or {}, since=since, until=until, args=(0, args), deprecated=deprecated)


# --- kubeadm init -------------------------------------------------------------------------------------------------

_CERT = ("cert-dir", "config", "dry-run", "kubernetes-version")
_CERT_API = (*_CERT, "apiserver-advertise-address", "apiserver-cert-extra-sans", "control-plane-endpoint",
             "service-cidr", "service-dns-domain")
_KUBECONFIG = ("apiserver-advertise-address", "apiserver-bind-port", "cert-dir", "config", "control-plane-endpoint",
               "dry-run", "kubeconfig-dir", "kubernetes-version")
_CP = ("cert-dir", "config", "dry-run", "image-repository", "kubernetes-version", "patches")
_CP_API = ("apiserver-advertise-address", "apiserver-bind-port", "control-plane-endpoint", "feature-gates",
           "service-cidr")
_ADDON_DNS = ("config", "dry-run", "feature-gates", "image-repository", "kubeconfig", "kubernetes-version",
              "print-manifest", "service-cidr", "service-dns-domain")
_ADDON_PROXY = ("apiserver-advertise-address", "apiserver-bind-port", "config", "control-plane-endpoint", "dry-run",
                "image-repository", "kubeconfig", "kubernetes-version", "pod-network-cidr", "print-manifest")
_FINALIZE = ("cert-dir", "config", "dry-run")
_UPLOAD = ("config", "dry-run", "kubeconfig")

INIT_PHASES: dict[str, Cmd] = {
    "preflight": P("config", "cri-socket", "dry-run", "ignore-preflight-errors"),
    "certs": P(sub={
        "all": P(*_CERT_API), "ca": P(*_CERT), "apiserver": P(*_CERT_API), "apiserver-kubelet-client": P(*_CERT),
        "front-proxy-ca": P(*_CERT), "front-proxy-client": P(*_CERT), "etcd-ca": P(*_CERT),
        "etcd-server": P(*_CERT), "etcd-peer": P(*_CERT), "etcd-healthcheck-client": P(*_CERT),
        "apiserver-etcd-client": P(*_CERT),
        # sa: only --cert-dir in the v1.29/v1.30 reference; --config from 1.31 (#125396).
        "sa": (P("cert-dir", until=30), P("cert-dir", "config", since=31))}),
    "kubeconfig": P(sub={
        "all": P(*_KUBECONFIG, "node-name"), "admin": P(*_KUBECONFIG), "super-admin": P(*_KUBECONFIG),
        "kubelet": P(*_KUBECONFIG, "node-name"), "controller-manager": P(*_KUBECONFIG),
        "scheduler": P(*_KUBECONFIG)}),
    "etcd": P(sub={"local": P("cert-dir", "config", "dry-run", "image-repository", "patches")}),
    "control-plane": P(sub={
        "all": P(*_CP, *_CP_API, "pod-network-cidr"), "apiserver": P(*_CP, *_CP_API),
        "controller-manager": P(*_CP, "pod-network-cidr"), "scheduler": P(*_CP)}),
    "kubelet-start": P("config", "cri-socket", "dry-run", "node-name", "patches"),
    "wait-control-plane": P(),
    "upload-config": P(sub={"all": P(*_UPLOAD), "kubeadm": P(*_UPLOAD), "kubelet": P(*_UPLOAD)}),
    "upload-certs": P("certificate-key", "config", "dry-run", "kubeconfig", "skip-certificate-key-print",
                      "upload-certs"),
    "mark-control-plane": P("config", "dry-run", "node-name"),
    "bootstrap-token": P("config", "dry-run", "kubeconfig", "skip-token-print"),
    "kubelet-finalize": P(sub={
        "all": P(*_FINALIZE), "enable-client-cert-rotation": P(*_FINALIZE, since=31),
        "experimental-cert-rotation": P(*_FINALIZE)}),
    "addon": P(sub={"all": P(*sorted(set(_ADDON_DNS) | set(_ADDON_PROXY))), "coredns": P(*_ADDON_DNS),
                    "kube-proxy": P(*_ADDON_PROXY)}),
    "show-join-command": P("config", "kubeconfig"),  # unconfirmed
}
INIT = Cmd(flags=("apiserver-advertise-address", "apiserver-bind-port", "apiserver-cert-extra-sans", "cert-dir",
                  "certificate-key", "config", "control-plane-endpoint", "cri-socket", "dry-run", "feature-gates",
                  "ignore-preflight-errors", "image-repository", "kubernetes-version", "node-name", "patches",
                  "pod-network-cidr", "service-cidr", "service-dns-domain", "skip-certificate-key-print",
                  "skip-phases", "skip-token-print", "token", "token-ttl", "upload-certs"),
           sub=INIT_PHASES, mixed=True, workflow=True)

# --- kubeadm join -------------------------------------------------------------------------------------------------

_DISC = ("discovery-file", "discovery-token", "discovery-token-ca-cert-hash",
         "discovery-token-unsafe-skip-ca-verification", "tls-bootstrap-token", "token")
_JOIN = ("apiserver-advertise-address", "apiserver-bind-port", "certificate-key", "config", "control-plane",
         "cri-socket", "dry-run", "ignore-preflight-errors", "node-name", "patches", *_DISC)
_CPJ = ("apiserver-advertise-address", "config", "control-plane", "dry-run", "node-name", "patches")
JOIN_PHASES: dict[str, Cmd] = {
    "preflight": P(*_JOIN, args=1),
    "control-plane-prepare": P(sub={
        "all": P("apiserver-advertise-address", "apiserver-bind-port", "certificate-key", "config", "control-plane",
                 "dry-run", "node-name", "patches", *_DISC, args=1),
        "download-certs": P("certificate-key", "config", "control-plane", "dry-run", *_DISC, args=1),
        "certs": P("apiserver-advertise-address", "config", "control-plane", "dry-run", "node-name", *_DISC,
                   args=1),
        "kubeconfig": P("certificate-key", "config", "control-plane", "dry-run", *_DISC, args=1),
        "control-plane": P("apiserver-advertise-address", "apiserver-bind-port", "config", "control-plane",
                           "dry-run", "patches")}),
    "kubelet-start": P("config", "cri-socket", "dry-run", "node-name", "patches", *_DISC, args=1),
    "etcd-join": P(*_CPJ, since=31),
    "kubelet-wait-bootstrap": P("config", "cri-socket", "dry-run", since=31),
    "control-plane-join": P(sub={
        "all": P(*_CPJ), "etcd": P(*_CPJ, until=34),
        "update-status": P("apiserver-advertise-address", "config", "control-plane", "node-name", until=30),
        "mark-control-plane": P("config", "control-plane", "dry-run", "node-name")}),
    "wait-control-plane": P(),
}
JOIN = Cmd(flags=(*_JOIN, "skip-phases"), sub=JOIN_PHASES, args=(0, 1), mixed=True, workflow=True)

# --- kubeadm reset (phase flag sets: the kubernetes.io reference; --config on phases not confirmed) ---------------

RESET = Cmd(flags=("cert-dir", "cleanup-tmp-dir", "config", "cri-socket", "dry-run", "force",
                   "ignore-preflight-errors", "kubeconfig", "skip-phases"),
            sub={"preflight": P("config", "dry-run", "force", "ignore-preflight-errors"),
                 "remove-etcd-member": P("config", "dry-run", "kubeconfig"),
                 "cleanup-node": P("cert-dir", "cleanup-tmp-dir", "config", "cri-socket", "dry-run")},
            mixed=True, workflow=True)

# --- kubeadm token, upgrade, certs, config, kubeconfig, version, completion ---------------------------------------

_OUT = ("allow-missing-template-keys", "experimental-output", "output", "show-managed-fields")
TOKEN = Cmd(group=True, persistent=("dry-run", "kubeconfig"), sub={
    "create": Cmd(flags=("certificate-key", "config", "description", "groups", "print-join-command", "ttl",
                         "usages"), args=(0, 1)),
    "delete": Cmd(args=(1, None)),
    "list": Cmd(flags=_OUT),
    "generate": Cmd(),
})

_UP = ("config", "dry-run", "kubeconfig")
UPGRADE_APPLY_PHASES: dict[str, Cmd] = {
    "preflight": P("allow-experimental-upgrades", "allow-release-candidate-upgrades", "config", "dry-run", "force",
                   "ignore-preflight-errors", "kubeconfig", "yes"),
    "control-plane": P("certificate-renewal", "config", "dry-run", "etcd-upgrade", "kubeconfig", "patches"),
    "upload-config": P(sub={"all": P(*_UP), "kubeadm": P(*_UP), "kubelet": P(*_UP)}),
    "kubelet-config": P(*_UP, "patches"),
    "bootstrap-token": P(*_UP),
    "addon": P(sub={"all": P(*_UP), "coredns": P(*_UP), "kube-proxy": P(*_UP)}),
    "post-upgrade": P(*_UP),
}
UPGRADE_NODE_PHASES: dict[str, Cmd] = {
    "preflight": P("config", "dry-run", "ignore-preflight-errors", "kubeconfig"),  # unconfirmed
    "control-plane": P("certificate-renewal", "config", "dry-run", "etcd-upgrade", "kubeconfig", "patches"),
    "kubelet-config": P(*_UP, "patches"),
    "addon": P(sub={"all": P(*_UP), "coredns": P(*_UP), "kube-proxy": P(*_UP)}, since=32),
    "post-upgrade": P(*_UP, since=32),
}
UPGRADE = Cmd(group=True, sub={
    "apply": Cmd(flags=("allow-experimental-upgrades", "allow-release-candidate-upgrades", "certificate-renewal",
                        "config", "dry-run", "etcd-upgrade", "feature-gates@upgrade", "force",
                        "ignore-preflight-errors", "kubeconfig", "patches", "print-config", "skip-phases@32", "yes"),
                 sub=UPGRADE_APPLY_PHASES, args=(0, 1), mixed=True, workflow=True, phases_since=32),
    "plan": Cmd(flags=("allow-experimental-upgrades", "allow-release-candidate-upgrades", "config",
                       "feature-gates@upgrade", "ignore-preflight-errors", "kubeconfig", "print-config", *_OUT),
                args=(0, 1), mixed=True),
    "diff": Cmd(flags=("api-server-manifest", "config", "context-lines", "controller-manager-manifest",
                       "kubeconfig", "scheduler-manifest"), args=(0, 1), mixed=True),
    "node": Cmd(flags=("certificate-renewal", "config", "dry-run", "etcd-upgrade", "ignore-preflight-errors",
                       "kubeconfig", "patches", "skip-phases"), sub=UPGRADE_NODE_PHASES, mixed=True, workflow=True),
})

_RENEW = ("cert-dir", "config", "kubeconfig")
CERTS = Cmd(group=True, sub={
    "check-expiration": Cmd(flags=("cert-dir", "config", "kubeconfig", *_OUT)),
    "renew": Cmd(group=True, sub={n: Cmd(flags=_RENEW) for n in (
        "all", "admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client",
        "controller-manager.conf", "etcd-healthcheck-client", "etcd-peer", "etcd-server", "front-proxy-client",
        "scheduler.conf", "super-admin.conf")}),
    "certificate-key": Cmd(),
    "generate-csr": Cmd(flags=("cert-dir", "config", "kubeconfig-dir")),
})

CONFIG = Cmd(group=True, persistent=("kubeconfig",), sub={
    "print": Cmd(group=True, sub={
        "init-defaults": Cmd(flags=("component-configs",)),
        "join-defaults": Cmd(flags=("component-configs",)),  # unconfirmed
        "reset-defaults": Cmd(), "upgrade-defaults": Cmd(since=31)}),
    "migrate": Cmd(flags=("allow-experimental-api", "new-config", "old-config")),
    "validate": Cmd(flags=("allow-experimental-api", "config")),
    "images": Cmd(group=True, sub={
        "list": Cmd(flags=("config", "feature-gates", "image-repository", "kubernetes-version", *_OUT)),
        "pull": Cmd(flags=("config", "cri-socket", "feature-gates", "image-repository", "kubernetes-version"))}),
})

ROOT = Cmd(group=True, persistent=GLOBAL_FLAGS, sub={
    "init": INIT, "join": JOIN, "reset": RESET, "token": TOKEN, "upgrade": UPGRADE, "certs": CERTS,
    "config": CONFIG,
    "kubeconfig": Cmd(group=True, sub={"user": Cmd(flags=("client-name", "config", "org", "token",
                                                           "validity-period"))}),
    "version": Cmd(flags=("output@version",)),
    "completion": Cmd(args=(1, 1)),
})


#: kubeadm feature gates: name -> (first minor, last minor, first minor where the gate is Deprecated).
#: cmd/kubeadm/app/features/features.go as rendered on pkg.go.dev / godocs.io at v1.30.1, v1.30.9,
#: v1.33.0-alpha.0 and v1.34.0-rc.0; UpgradeAddonsBeforeControlPlane removed in 1.31 (#124715); PublicKeysECDSA
#: removed with v1beta3 (#136016, 1.37). Newer gates than the v1.34.0-rc.0 list are not known here.
FEATURE_GATES: dict[str, tuple[int, int, int | None]] = {
    "PublicKeysECDSA": (19, 36, 30), "RootlessControlPlane": (22, 99, None), "EtcdLearnerMode": (27, 33, None),
    "UpgradeAddonsBeforeControlPlane": (28, 30, 28), "WaitForAllControlPlaneComponents": (30, 99, None),
    "ControlPlaneKubeletLocalMode": (31, 99, None), "NodeLocalCRISocket": (32, 99, None),
}


# --- parsing helpers over the tables (pflag/cobra behaviour) -----------------------------------------------------

class FlagError(ValueError):
    """A command line pflag or cobra refuses (the message is theirs)."""


def pick(node: Cmd | tuple[Cmd, ...], minor: int) -> Cmd | None:
    return next((c for c in (node if isinstance(node, tuple) else (node,)) if c.since <= minor <= c.until), None)


def flag_defs(names: tuple[str, ...], minor: int) -> dict[str, Flag]:
    out: dict[str, Flag] = {}
    for key in names:
        spec = next((f for f in FLAGS[key] if f.since <= minor <= f.until), None)
        if spec is not None:
            out[key.split("@")[0]] = spec
    return out


_DURATION = re.compile(r"[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+)")


def check_value(kind: str, value: str) -> str | None:
    """pflag's parse error for a flag value, or None."""
    if kind == "bool" and value not in ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false",
                                        "False"):
        return f'strconv.ParseBool: parsing "{value}": invalid syntax'
    if kind in ("int32", "int", "uint", "level"):
        limit = {"int32": 2**31, "int": 2**63, "uint": 2**64, "level": 2**31}[kind]
        parser = "ParseUint" if kind == "uint" else "ParseInt"
        try:
            n = int(value, 10 if kind == "level" else 0)
        except ValueError:
            return f'strconv.{parser}: parsing "{value}": invalid syntax'
        if not (0 if kind == "uint" else -limit) <= n < limit:
            return f'strconv.{parser}: parsing "{value}": value out of range'
    if kind == "duration" and not _DURATION.fullmatch(value):
        return f'time: invalid duration "{value}"'
    return None


def phase_names(phases: Mapping[str, Any], minor: int, prefix: str = "") -> list[str]:
    """The workflow runner's generated phase names ("certs", "certs/ca", ...) accepted by --skip-phases."""
    out: list[str] = []
    for name, node in phases.items():
        cmd = pick(node, minor)
        if cmd is not None:
            out.append(prefix + name)
            out += phase_names(cmd.sub, minor, prefix + name + "/")
    return out


def flags_for(chain: list[tuple[str, Cmd]], minor: int) -> dict[str, Flag]:
    names = [*ROOT.persistent]
    for _, cmd in chain[1:-1]:
        names += cmd.persistent
    names += chain[-1][1].flags
    if len(chain) > 1:
        names += chain[-1][1].persistent
    return flag_defs(tuple(names), minor)


def non_flag_words(argv: list[str], defs: dict[str, Flag]) -> list[str]:
    shorts = {f.shorthand: f for f in defs.values() if f.shorthand}
    words, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            break
        if a.startswith("--") and "=" not in a:
            spec = defs.get(a[2:])
            i += 1 if spec is None or spec.kind != "bool" else 0
        elif a.startswith("-") and len(a) == 2 and a != "-":
            spec = shorts.get(a[1])
            i += 1 if spec is None or spec.kind != "bool" else 0
        elif not a.startswith("-") or a == "-":
            words.append(a)
        i += 1
    return words


def parse_flags(argv: list[str], defs: dict[str, Flag], minor: int
                 ) -> tuple[dict[str, list[str]], list[str], list[str], bool]:
    shorts = {f.shorthand: n for n, f in defs.items() if f.shorthand}
    flags: dict[str, list[str]] = {}
    args: list[str] = []
    warnings: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            args += argv[i:]
            break
        if not a.startswith("-") or a == "-":
            args.append(a)
            continue
        if a.startswith("--"):
            name, eq, inline = a[2:].partition("=")
            if name not in defs:
                raise FlagError(f"unknown flag: --{name}")
            shown = f"--{name}"
            pending: list[tuple[str, str | None]] = [(name, inline if eq else None)]
        else:
            pending = []
            letters = a[1:]
            while letters:
                letter, letters = letters[0], letters[1:]
                if letter not in shorts:
                    raise FlagError(f"unknown shorthand flag: '{letter}' in {a}")
                if defs[shorts[letter]].kind != "bool" and letters:
                    pending.append((shorts[letter], letters.removeprefix("=")))
                    letters = ""
                elif letters.startswith("="):
                    pending.append((shorts[letter], letters[1:]))
                    letters = ""
                else:
                    pending.append((shorts[letter], None))
            shown = a
        for name, given in pending:
            spec = defs[name]
            if given is not None:
                value = given
            elif spec.kind == "bool":
                value = "true"
            elif i < len(argv):
                value, i = argv[i], i + 1
            else:
                raise FlagError(f"flag needs an argument: {shown}")
            problem = check_value(spec.kind, value)
            if problem:
                label = f"-{spec.shorthand}, --{name}" if spec.shorthand else f"--{name}"
                raise FlagError(f'invalid argument "{value}" for "{label}" flag: {problem}')
            if spec.deprecated:
                warnings.append(f"Flag --{name} has been deprecated, {spec.deprecated}")
            flags.setdefault(name, []).append(value)
    return flags, args, warnings, "help" in flags


@dataclass(frozen=True)
class Parsed:
    path: tuple[str, ...]
    flags: dict[str, list[str]]
    args: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    help_only: bool = False


def split_values(flags: dict[str, list[str]], name: str) -> list[str]:
    return [v for value in flags.get(name, []) for v in value.split(",") if v]


def parse(argv: list[str], minor: int) -> Parsed:
    """`kubeadm ARGV...` as cobra and pflag read it, then kubeadm's own argument rules."""
    chain: list[tuple[str, Cmd]] = [("kubeadm", ROOT)]
    rest = list(argv)
    while True:  # cobra's Find: descend through the first non-flag words that name subcommands
        cmd = chain[-1][1]
        words = non_flag_words(rest, flags_for(chain, minor))
        subs = {k: c for k, v in cmd.sub.items() if (c := pick(v, minor)) is not None}
        if cmd.workflow:
            subs = {"phase": Cmd(group=True, sub=cmd.sub)} if minor >= cmd.phases_since else {}
        if not words or words[0] not in subs:
            break
        chain.append((words[0], subs[words[0]]))
        rest.remove(words[0])
    path = tuple(n for n, _ in chain[1:])
    where = " ".join(n for n, _ in chain)
    flags, args, warnings, help_only = parse_flags(rest, flags_for(chain, minor), minor)
    cmd = chain[-1][1]
    in_phase = len(path) >= 2 and path[1] == "phase"
    if help_only:
        return Parsed(path, flags, tuple(args), tuple(warnings), True)
    if path[-1:] == ("phase",) and in_phase:
        if args:
            raise FlagError(f'unknown command "{args[0]}" for "{where}" (kubeadm prints the help of '
                                f'"{where}" and exits 0 without running any phase)')
        return Parsed(path, flags, tuple(args), tuple(warnings), True)
    if len(chain) == 1:  # cobra's legacy argument check of the root command
        if args:
            raise FlagError(f'unknown command "{args[0]}" for "kubeadm"')
        return Parsed(path, flags, tuple(args), tuple(warnings), True)
    if cmd.group and not in_phase:  # cmdutil.SubCmdRun: usage error with arguments, help + exit 1 without
        if args:
            raise FlagError(f'invalid subcommand "{" ".join(args)}"\nSee \'{where} -h\' for help and examples')
        raise FlagError(f'"{where}" is not meant to be run on its own: it prints its help and exits 1')
    if in_phase and cmd.sub:  # a phase with sub-phases: the runner prints the help and exits 0
        if args:
            raise FlagError(f'unknown command "{args[0]}" for "{where}"')
        return Parsed(path, flags, tuple(args), tuple(warnings), True)
    low, high = cmd.args
    if high == 0 and args:
        raise FlagError(f'unknown command "{args[0]}" for "{where}"')
    if high is not None and len(args) > high:
        raise FlagError(f"accepts at most {high} arg(s), received {len(args)}")
    if len(args) < low:
        raise FlagError(f"requires at least {low} arg(s), only received {len(args)}")
    _command_rules(path, chain, flags, minor)
    return Parsed(path, flags, tuple(args), tuple(warnings))


def _command_rules(path: tuple[str, ...], chain: list[tuple[str, Cmd]], flags: dict[str, list[str]],
                   minor: int) -> None:
    """What kubeadm checks right after parsing: mixed arguments, --ignore-preflight-errors, --skip-phases,
    --feature-gates."""
    if any(c.mixed for _, c in chain) and "config" in flags:
        mixed = sorted(n for n in flags if n != "help" and not n.startswith("skip-")
                       and MIXED_ALLOWED.get(n, 99) > minor)
        if mixed:
            raise FlagError(f"can not mix '--config' with arguments [{' '.join(mixed)}]")
    check_ignore_list(split_values(flags, "ignore-preflight-errors"))
    workflow = next((c for _, c in chain if c.workflow), None)
    if workflow is not None:
        check_skip_phases(split_values(flags, "skip-phases"), workflow, minor)
    gates = (flags.get("feature-gates") or [""])[-1]
    if gates:
        for item in (s for s in gates.split(",") if s):
            key, eq, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not eq:
                raise FlagError(f"missing bool value for feature-gate key:{item}")
            status = feature_gate_status(key, minor)
            if status == "unknown":
                raise FlagError(f"unrecognized feature-gate key: {key}")
            if status == "deprecated":
                raise FlagError(f"feature-gate key is deprecated: {key}")
            if check_value("bool", value):
                raise FlagError(f"invalid value {value} for feature-gate key: {key}, use true|false instead")


def check_ignore_list(items: list[str]) -> set[str]:
    """ValidateIgnorePreflightErrors: case-insensitive; "all" may not come with individual checks."""
    ignored = {i.lower() for i in items}
    if "all" in ignored and len(ignored) > 1:
        raise FlagError(f'ignore-preflight-errors: Invalid value: "{",".join(sorted(ignored))}": '
                            "don't specify individual checks if 'all' is used")
    return ignored


def check_skip_phases(names: list[str], workflow: Cmd, minor: int) -> None:
    known = phase_names(workflow.sub, minor)
    for name in names:
        if name not in known:
            raise FlagError(f"invalid phase name: {name}")


def feature_gate_status(name: str, minor: int) -> str:
    spec = FEATURE_GATES.get(name)
    if spec is None or not spec[0] <= minor <= spec[1]:
        return "unknown"
    return "deprecated" if spec[2] is not None and minor >= spec[2] else "known"
