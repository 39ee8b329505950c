"""The kubeadm stand-in of the bootstrap sandbox: every invocation is first held to kubeadm's contract
(tests/sandbox/kubeadm_contract.py: flags per command and phase, strict config decoding, validation,
preflight), then performs what kubeadm does on a host, in kubeadm's phase order (cmd/kubeadm/app/cmd/init.go,
join.go, phases/init/*.go, phases/join/*.go): certificates and kubeconfigs signed by the CAs on disk, static
pod manifests (the etcd one is RUN by the sandbox's kubelet with the real etcd binary), the kubelet's config
and flags, kubeadm-config / kubelet-config / cluster-info and bootstrap tokens stored in the API
(tests/sandbox/apistore.py, i.e. in the real etcd), discovery that checks the token and the CA pin, the etcd
member added as a learner then promoted on join, and `reset`.

What it does not do: run kube-apiserver, the controller manager, the scheduler, CoreDNS or kube-proxy (their
manifests and objects are written; "the API" is the storage in etcd, see tests/sandbox/host.py).

Called by tests/sandbox/standins.py for the `kubeadm` command.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.sandbox import certs
from tests.sandbox import kubeadm_contract as contract
from tests.sandbox.apistore import Api, Unavailable
from tests.sandbox.host import Host, all_hosts, resolve_api

#: kubeadm's etcd image per Kubernetes minor (cmd/kubeadm/app/constants: SupportedEtcdVersion).
ETCD_VERSIONS = {"1.30": "3.5.15-0", "1.31": "3.5.15-0", "1.32": "3.5.16-0", "1.33": "3.5.21-0",
                 "1.34": "3.6.4-0", "1.35": "3.6.5-0", "1.36": "3.6.6-0", "1.37": "3.6.6-0"}
CONF_FILES = ("admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf", "controller-manager.conf",
              "scheduler.conf")
SHARED_CERTS = ("ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt",
                "etcd/ca.key")


class KubeadmError(Exception):
    """kubeadm exits 1 with this message."""


class Kubeadm:
    def __init__(self, host: Host, argv: list[str]) -> None:
        self.host = host
        self.root = host.root
        self.k8s = self.root / "etc/kubernetes"
        self.pki = self.k8s / "pki"
        packages = host.state().get("packages", {})
        if "kubeadm" not in packages:
            raise KubeadmError("kubeadm: command not found (the kubeadm package is not installed)")
        self.patch = packages["kubeadm"]
        self.minor = ".".join(self.patch.split(".")[:2])
        try:
            self.inv = contract.parse_command(argv, self.minor)
            config = self.flag("config")
            # Strict, like `kubeadm config validate`: `kubeadm init/join --config` only warn about an unknown
            # or misplaced field, but such a field is a setting silently ignored on the node.
            self.configs = contract.load_configs(Path(config).read_text(), self.minor, strict=True) if config else {}
            contract.validate(self.configs, self.inv, self.minor)
        except contract.ContractError as exc:
            raise KubeadmError(str(exc)) from exc

    # -- helpers ------------------------------------------------------------------------------------------
    def flag(self, name: str) -> str | None:
        values = self.inv.flags.get(name)
        return values[-1] if values else None

    def cfg(self, kind: str) -> dict[str, Any]:
        return self.configs.get(kind) or {}

    @property
    def registration(self) -> dict[str, Any]:
        return (self.cfg("InitConfiguration") or self.cfg("JoinConfiguration")).get("nodeRegistration", {})

    @property
    def node(self) -> str:
        return str(self.registration.get("name") or self.host.state()["name"])

    @property
    def advertise(self) -> str:
        init = self.cfg("InitConfiguration").get("localAPIEndpoint", {})
        join = (self.cfg("JoinConfiguration").get("controlPlane") or {}).get("localAPIEndpoint", {})
        return str(init.get("advertiseAddress") or join.get("advertiseAddress") or self.host.ip)

    def cluster_config(self) -> dict[str, Any]:
        """The ClusterConfiguration: from --config on init, from the cluster (kubeadm-config) on join."""
        if self.cfg("ClusterConfiguration"):
            return self.cfg("ClusterConfiguration")
        cm = self.api().get("configmaps", "kubeadm-config", "kube-system")
        if cm is None:
            raise KubeadmError("unable to fetch the kubeadm-config ConfigMap: configmaps \"kubeadm-config\" not found")
        return dict(yaml.safe_load(cm["data"]["ClusterConfiguration"]))

    def endpoint(self) -> str:
        join = self.cfg("JoinConfiguration")
        if join:
            return str(join["discovery"]["bootstrapToken"]["apiServerEndpoint"])
        return str(self.cluster_config().get("controlPlaneEndpoint") or f"{self.advertise}:6443")

    def api(self, tries: int = 25) -> Api:
        try:
            return resolve_api(self.host.world, f"https://{self.endpoint()}", tries)
        except Unavailable as exc:
            raise KubeadmError(f"error execution phase: {exc}") from exc

    def data_dir(self) -> str:
        return str(self.cluster_config().get("etcd", {}).get("local", {}).get("dataDir", "/var/lib/etcd"))

    # -- dispatch -----------------------------------------------------------------------------------------
    def run(self) -> str:
        path = self.inv.path
        if self.inv.help_only:
            return f"(help of kubeadm {' '.join(path)})\n"
        if path[0] in ("init", "join") and len(path) == 1:
            return self.full(path[0])
        if path[:2] in (("init", "phase"), ("join", "phase")):
            self.phase(path[0], path[2], path[3] if len(path) > 3 else "all")
            return ""
        if path == ("token", "create"):
            return self.token_create()
        if path == ("reset",):
            self.reset()
            return "[reset] done\n"
        if path == ("config", "images", "list"):
            return self.images()
        if path == ("version",):
            return f"kubeadm version: &version.Info{{GitVersion:\"v{self.patch}\"}}\n"
        raise KubeadmError(f"the sandbox's kubeadm does not emulate `kubeadm {' '.join(path)}`")

    def full(self, command: str) -> str:
        control_plane = command == "init" or "controlPlane" in self.cfg("JoinConfiguration")
        if command == "join":
            self.discovery()
        errors = self.preflight()
        if errors:
            raise KubeadmError("error execution phase preflight: [preflight] Some fatal errors occurred:\n"
                               + "\n".join(f"\t{e}" for e in errors)
                               + "\n[preflight] If you know what you are doing, you can make a check non-fatal "
                                 "with `--ignore-preflight-errors=...`")
        order = (["certs", "kubeconfig", "etcd", "control-plane", "kubelet-start", "wait-control-plane",
                  "upload-config", "mark-control-plane", "bootstrap-token", "kubelet-finalize", "addon"]
                 if command == "init" else
                 (["control-plane-prepare", "kubelet-start", "control-plane-join"] if control_plane
                  else ["kubelet-start"]))
        skipped = set((self.flag("skip-phases") or "").split(",")) - {""}
        for name in order:
            if name not in skipped:
                self.phase(command, name, "all")
                self.injected_failure(name)
        if command == "init" and not self.flag("skip-token-print"):
            return f"kubeadm join {self.endpoint()} --token {self.token_create()} ...\n"
        return ""

    def injected_failure(self, phase: str) -> None:
        """A test may make one `kubeadm init|join` fail right after a phase ($SANDBOX_FAIL_AFTER), once per host:
        the state a crash or a timeout at that point leaves behind."""
        if os.environ.get("SANDBOX_FAIL_AFTER") == phase:
            marker = self.host.dir / f"failed-after-{phase}"
            if not marker.exists():
                marker.touch()
                raise KubeadmError(f"error execution phase {phase}: injected failure (timed out waiting for the "
                                   "condition)")

    def _preflight_configs(self) -> dict[str, dict[str, Any]]:
        configs = dict(self.configs)
        if "JoinConfiguration" in configs and "controlPlane" in configs["JoinConfiguration"]:
            configs.setdefault("ClusterConfiguration", self.cluster_config())
        return configs

    def port_in_use(self, port: int) -> bool:
        if port in (2379, 2380):
            return self.host.etcd_pid() is not None
        if port == 10250:
            return bool(self.host.state().get("kubelet"))
        return port in (6443, 10257, 10259) and bool(self.host.state().get("kubelet")) and \
            self.host.manifest("kube-apiserver") is not None

    def phase(self, command: str, name: str, sub: str) -> None:
        handler = getattr(self, "phase_" + name.replace("-", "_"), None)
        if handler is None:
            raise KubeadmError(f"the sandbox's kubeadm does not emulate phase {command} {name}")
        handler(command, sub)

    # -- phases -------------------------------------------------------------------------------------------
    def preflight(self) -> list[str]:
        try:
            return contract.preflight(self.inv, self._preflight_configs(), self.root, self.minor, self.port_in_use)
        except contract.ContractError as exc:
            raise KubeadmError(f"error execution phase preflight: {exc}") from exc

    def phase_preflight(self, command: str, sub: str) -> None:
        errors = self.preflight()
        if errors:
            raise KubeadmError("\n".join(errors))

    def phase_certs(self, command: str, sub: str) -> None:
        for ca in ("ca", "front-proxy-ca", "etcd/ca"):
            if not (self.pki / f"{ca}.crt").exists():
                if command == "join":
                    raise KubeadmError(f"failure loading {ca} certificate authority: couldn't load the certificate "
                                       f"file {self.pki / ca}.crt")
                certs.make_ca(self.pki, ca)
        if not (self.pki / "sa.key").exists():
            raise KubeadmError("the sandbox expects sa.key from the state bucket")
        sans = tuple((self.cluster_config().get("apiServer") or {}).get("certSANs") or ())
        wanted = list(certs.LEAVES) if sub == "all" else [sub]
        for leaf in wanted:
            if leaf not in certs.LEAVES:
                continue  # ca, sa, etcd-ca: present
            certs.write_leaf(self.pki, certs.LEAVES[leaf], self.node, self.advertise, sans)

    def phase_kubeconfig(self, command: str, sub: str) -> None:
        server = f"https://{self.endpoint()}"
        cluster = str(self.cluster_config().get("clusterName", "kubernetes"))
        users = {"admin": ("kubernetes-admin", ("kubeadm:cluster-admins",)),
                 "super-admin": ("kubernetes-super-admin", ("system:masters",)),
                 "kubelet": (f"system:node:{self.node}", ("system:nodes",)),
                 "controller-manager": ("system:kube-controller-manager", ()),
                 "scheduler": ("system:kube-scheduler", ())}
        if command == "join":
            users.pop("super-admin")
            users.pop("kubelet")
        for name, (user, orgs) in users.items():
            if sub not in ("all", name):
                continue
            path = self.k8s / f"{name}.conf"
            if not path.exists():
                path.write_text(certs.kubeconfig(self.pki, server, cluster, user, orgs))

    def phase_etcd(self, command: str, sub: str) -> None:
        if command == "join" or sub == "member":  # control-plane-join's etcd subphase
            self.join_etcd()
            return
        self.write_etcd_manifest({self.node: f"https://{self.advertise}:2380"}, existing=False)

    def etcd_image(self) -> str:
        repo = self.cluster_config().get("imageRepository") or "registry.k8s.io"
        return f"{repo}/etcd:{ETCD_VERSIONS.get(self.minor, '3.6.6-0')}"

    def write_etcd_manifest(self, initial: dict[str, str], existing: bool) -> None:
        ip, data = self.advertise, self.data_dir()
        cmd = ["etcd", f"--advertise-client-urls=https://{ip}:2379", "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
               "--client-cert-auth=true", f"--data-dir={data}", "--experimental-initial-corrupt-check=true",
               "--experimental-watch-progress-notify-interval=5s", f"--initial-advertise-peer-urls=https://{ip}:2380",
               "--initial-cluster=" + ",".join(f"{n}={u}" for n, u in initial.items()),
               *(["--initial-cluster-state=existing"] if existing else []),
               "--key-file=/etc/kubernetes/pki/etcd/server.key",
               f"--listen-client-urls=https://127.0.0.1:2379,https://{ip}:2379",
               "--listen-metrics-urls=http://127.0.0.1:2381", f"--listen-peer-urls=https://{ip}:2380",
               f"--name={self.node}", "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
               "--peer-client-cert-auth=true", "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
               "--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt", "--snapshot-count=10000",
               "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt"]
        self._static_pod("etcd", self.etcd_image(), cmd, {"etcd-data": data, "etcd-certs": "/etc/kubernetes/pki/etcd"})
        self.host.sync_static_pods()

    def _static_pod(self, name: str, image: str, command: list[str], volumes: dict[str, str]) -> None:
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "kube-system", "labels": {"component": name}},
               "spec": {"hostNetwork": True, "priorityClassName": "system-node-critical",
                        "containers": [{"name": name, "image": image, "command": command}],
                        "volumes": [{"name": v, "hostPath": {"path": p, "type": "DirectoryOrCreate"}}
                                    for v, p in volumes.items()]}}
        path = self.k8s / "manifests" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(pod, sort_keys=False))

    def phase_control_plane(self, command: str, sub: str) -> None:
        cfg = self.cluster_config()
        repo = cfg.get("imageRepository") or "registry.k8s.io"
        version = cfg.get("kubernetesVersion", f"v{self.patch}")
        for component, section in (("kube-apiserver", "apiServer"), ("kube-controller-manager", "controllerManager"),
                                   ("kube-scheduler", "scheduler")):
            if sub not in ("all", component.removeprefix("kube-")):
                continue
            args = (cfg.get(section) or {}).get("extraArgs") or []
            pairs = [(a["name"], a["value"]) for a in args] if isinstance(args, list) else sorted(args.items())
            command_line = [component, *(f"--{k}={v}" for k, v in pairs)]
            if component == "kube-apiserver":
                command_line.append(f"--advertise-address={self.advertise}")
                command_line.append("--etcd-servers=https://127.0.0.1:2379")
            self._static_pod(component, f"{repo}/{component}:{version}", command_line, {})

    def phase_control_plane_prepare(self, command: str, sub: str) -> None:
        missing = [f for f in SHARED_CERTS if not (self.pki / f).exists()]
        if missing:
            raise KubeadmError("error execution phase control-plane-prepare/certs: one or more conditions for hosting "
                               "a new control plane instance is not satisfied. [failure loading certificate "
                               f"authority: {', '.join(missing)} missing]")
        self.phase_certs(command, "all")
        self.phase_kubeconfig(command, "all")
        self.phase_control_plane(command, "all")

    def phase_kubelet_start(self, command: str, sub: str) -> None:
        kubelet_dir = self.root / "var/lib/kubelet"
        kubelet_dir.mkdir(parents=True, exist_ok=True)
        config = dict(self.cfg("KubeletConfiguration"))
        if command == "join":
            cm = self.api().get("configmaps", "kubelet-config", "kube-system")
            config = dict(yaml.safe_load(cm["data"]["kubelet"])) if cm else config
        patches = self.cfg("JoinConfiguration").get("patches", {}).get("directory") or self.flag("patches")
        if patches:
            patch = self.root / str(patches).lstrip("/") / "kubeletconfiguration+merge.yaml"
            if patch.exists():
                config.update(yaml.safe_load(patch.read_text()))
        (kubelet_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=True))
        extra = self.registration.get("kubeletExtraArgs") or []
        pairs = [(a["name"], a["value"]) for a in extra] if isinstance(extra, list) else sorted(extra.items())
        taints = ",".join(f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t['effect']}"
                          for t in self.registration.get("taints") or [])
        flags = [f"--{k}={v}" for k, v in pairs] + ([f"--register-with-taints={taints}"] if taints else [])
        (kubelet_dir / "kubeadm-flags.env").write_text(f'KUBELET_KUBEADM_ARGS="{" ".join(flags)}"\n')
        if command == "join" and not (self.k8s / "kubelet.conf").exists():
            # TLS bootstrap with the bootstrap token: the kubelet's client certificate is signed by the cluster
            # CA (the controller manager's CSR signer, on the control plane); a worker keeps the CA cert only.
            self.discovery()
            signer = self.api().pki
            self.pki.mkdir(parents=True, exist_ok=True)
            if not (self.pki / "ca.crt").exists():
                (self.pki / "ca.crt").write_bytes((signer / "ca.crt").read_bytes())
            cluster = str(self.cluster_config().get("clusterName", "kubernetes"))
            (self.k8s / "kubelet.conf").write_text(certs.kubeconfig(
                signer, f"https://{self.endpoint()}", cluster, f"system:node:{self.node}", ("system:nodes",)))
        with self.host.edit() as state:
            state["kubelet"] = True
            state["kubelet_flags"] = flags
        self.host.sync_static_pods()
        if command == "join":
            self.register_node()

    def register_node(self) -> dict[str, Any]:
        """What the kubelet does once it reaches the API: its Node, with --node-labels and taints."""
        api = self.api()
        node = api.get("nodes", self.node)
        if node is None:
            flags = dict(f.removeprefix("--").split("=", 1) for f in self.host.state().get("kubelet_flags", []))
            labels = {"kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux"}
            labels.update(dict(kv.split("=", 1) for kv in flags.get("node-labels", "").split(",") if kv))
            taints = []
            for item in filter(None, flags.get("register-with-taints", "").split(",")):
                kv, effect = item.rsplit(":", 1)
                key, _, value = kv.partition("=")
                taints.append({"key": key, "effect": effect, **({"value": value} if value else {})})
            status = {"addresses": [{"type": "InternalIP", "address": self.host.ip}],
                      "conditions": [{"type": "Ready", "status": "True"}]}
            node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node, "labels": labels},
                    "spec": {"taints": taints}, "status": status}
            api.put("nodes", node)
        return node

    def phase_wait_control_plane(self, command: str, sub: str) -> None:
        # kubeadm waits 4 minutes for the control plane; real etcd on a loaded 2-core machine may take more
        # than a few seconds to elect a leader, so this waits long enough never to fail for slowness alone.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.host.api() is not None:
                return
            time.sleep(0.1)
        raise KubeadmError("[wait-control-plane] the control plane did not become healthy: etcd has no quorum")

    def phase_upload_config(self, command: str, sub: str) -> None:
        api = self.api()
        if sub in ("all", "kubeadm"):
            api.put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                                   "data": {"ClusterConfiguration": yaml.safe_dump(self.cluster_config())}})
        if sub in ("all", "kubelet"):
            api.put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "kubelet-config", "namespace": "kube-system"},
                                   "data": {"kubelet": yaml.safe_dump(self.cfg("KubeletConfiguration"))}})

    def phase_mark_control_plane(self, command: str, sub: str) -> None:
        api = self.api()
        node = self.register_node()
        node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] = ""
        node["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        taints = [t for t in node["spec"].get("taints", []) if t["key"] != "node-role.kubernetes.io/control-plane"]
        node["spec"]["taints"] = taints + list(self.registration.get("taints") or [])
        api.put("nodes", node)

    def phase_control_plane_join(self, command: str, sub: str) -> None:
        if sub in ("all", "etcd"):
            self.join_etcd()
        if sub in ("all", "mark-control-plane"):
            self.phase_mark_control_plane(command, sub)

    def phase_bootstrap_token(self, command: str, sub: str) -> None:
        ca = (self.pki / "ca.crt").read_bytes()
        kubeconfig = {"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "", "cluster": {
            "certificate-authority-data": base64.b64encode(ca).decode(), "server": f"https://{self.endpoint()}"}}]}
        self.api().put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "cluster-info", "namespace": "kube-public"},
                                      "data": {"kubeconfig": yaml.safe_dump(kubeconfig)}})

    def phase_kubelet_finalize(self, command: str, sub: str) -> None:
        kubelet_conf = self.k8s / "kubelet.conf"
        doc = yaml.safe_load(kubelet_conf.read_text())
        for user in doc["users"]:
            user["user"] = {"client-certificate": "/var/lib/kubelet/pki/kubelet-client-current.pem",
                            "client-key": "/var/lib/kubelet/pki/kubelet-client-current.pem"}
        kubelet_conf.write_text(yaml.safe_dump(doc, sort_keys=False))
        with self.host.edit() as state:
            state["kubelet_client_rotation"] = True

    def phase_addon(self, command: str, sub: str) -> None:
        api = self.api()
        for name in ("coredns", "kube-proxy"):
            if sub in ("all", name):
                api.put("deployments" if name == "coredns" else "daemonsets", {
                    "apiVersion": "apps/v1", "kind": "Deployment" if name == "coredns" else "DaemonSet",
                    "metadata": {"name": name, "namespace": "kube-system"}})

    # -- join: discovery and etcd ------------------------------------------------------------------------
    def discovery(self) -> None:
        """Token discovery: the token must exist in the cluster and the cluster-info CA must match the pin."""
        bootstrap = self.cfg("JoinConfiguration")["discovery"]["bootstrapToken"]
        api = self.api()
        token_id, secret = str(bootstrap["token"]).split(".", 1)
        stored = api.get("secrets", f"bootstrap-token-{token_id}", "kube-system")
        if stored is None or stored["data"]["token-secret"] != secret or stored["data"]["expiration"] < time.time():
            raise KubeadmError("error execution phase preflight: couldn't validate the identity of the API Server: "
                               f"token id \"{token_id}\" is invalid for this cluster or it has expired")
        info = api.get("configmaps", "cluster-info", "kube-public")
        if info is None:
            raise KubeadmError("error execution phase preflight: configmaps \"cluster-info\" not found")
        ca = base64.b64decode(yaml.safe_load(info["data"]["kubeconfig"])["clusters"][0]["cluster"][
            "certificate-authority-data"])
        if certs.spki_hash(ca) not in bootstrap.get("caCertHashes", []):
            raise KubeadmError("error execution phase preflight: couldn't validate the identity of the API Server: "
                               "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "
                               "\"" + certs.spki_hash(ca) + "\" are pinned")

    def etcd_peers(self) -> list[Api]:
        peers = []
        for host in all_hosts(self.host.world):
            if host.iid != self.host.iid and host.alive and host.etcd_pid():
                peers.append(Api(f"https://{host.ip}:2379", self.pki))
        return peers

    def join_etcd(self) -> None:
        """kubeadm's stacked etcd join (phases/join/controlplanejoin.go, util/etcd): add this member as a
        learner through the existing members, start it with initial-cluster-state existing, promote it."""
        peer_url = f"https://{self.advertise}:2380"
        members: list[dict[str, Any]] = []
        added = None
        for attempt in range(12):
            for peer in self.etcd_peers():
                try:
                    answer = peer._call("cluster/member/add", {"peerURLs": [peer_url], "isLearner": True})
                except Unavailable as exc:
                    last = str(exc)
                    continue
                added, members = answer["member"]["ID"], answer["members"]
                break
            if added:
                break
            time.sleep(0.1 * (attempt + 1))
        if not added:
            raise KubeadmError(f"error execution phase control-plane-join/etcd: error creating local etcd static pod "
                               f"manifest file: etcdserver: {locals().get('last', 'no etcd member answered')}")
        initial = {m["name"]: m["peerURLs"][0] for m in members if m.get("name")}
        initial[self.node] = peer_url
        self.write_etcd_manifest(initial, existing=True)
        for _ in range(100):
            for peer in self.etcd_peers():
                try:
                    peer._call("cluster/member/promote", {"ID": added})
                    return
                except Unavailable:
                    continue
            time.sleep(0.1)
        raise KubeadmError("error execution phase control-plane-join/etcd: etcd learner was not promoted")

    # -- token, reset, images ----------------------------------------------------------------------------
    def token_create(self) -> str:
        kubeconfig = self.flag("kubeconfig") or str(self.k8s / "admin.conf")
        server = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
        api = resolve_api(self.host.world, server, 25)
        token_id, secret = secrets.token_hex(3), secrets.token_hex(8)
        ttl = self.flag("ttl") or "24h"
        seconds = int(ttl[:-1]) * {"h": 3600, "m": 60, "s": 1}[ttl[-1]]
        api.put("secrets", {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
                            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
                            "data": {"token-id": token_id, "token-secret": secret,
                                     "expiration": time.time() + seconds}})
        return f"{token_id}.{secret}\n"

    def reset(self) -> None:
        """kubeadm reset: remove this node's etcd member (when the cluster's config is reachable), stop the
        kubelet, clean the etcd data directory (from the cluster config, else the etcd manifest, else the
        default /var/lib/etcd: phases/reset/removeetcdmember.go getEtcdDataDir), manifests, kubelet dir, pki and
        the kubeconfigs."""
        data_dir = None
        cluster = None
        try:  # the cluster's ClusterConfiguration, through admin.conf, when the API answers
            server = yaml.safe_load((self.k8s / "admin.conf").read_text())["clusters"][0]["cluster"]["server"]
            cm = resolve_api(self.host.world, server, 3).get("configmaps", "kubeadm-config", "kube-system")
            cluster = yaml.safe_load(cm["data"]["ClusterConfiguration"]) if cm else None
        except (Unavailable, OSError, KeyError, TypeError):
            cluster = None
        if cluster is not None:
            data_dir = cluster.get("etcd", {}).get("local", {}).get("dataDir")
            self._remove_own_member()
        pod = self.host.manifest("etcd")
        if data_dir is None and pod is not None:
            data_dir = next(v["hostPath"]["path"] for v in pod["spec"]["volumes"] if v["name"] == "etcd-data")
        with self.host.edit() as state:
            state["kubelet"] = False
        self.host.sync_static_pods()
        for directory in (data_dir or "/var/lib/etcd", "/etc/kubernetes/manifests", "/var/lib/kubelet",
                          "/etc/kubernetes/pki"):
            path = self.root / directory.lstrip("/")
            if path.is_dir():
                for child in path.iterdir():
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        for name in CONF_FILES:
            (self.k8s / name).unlink(missing_ok=True)

    def _remove_own_member(self) -> None:
        peer_url = f"https://{self.host.ip}:2380"
        for peer in self.etcd_peers():
            try:
                members = peer._call("cluster/member/list", {}).get("members", [])
                for m in members:
                    if peer_url in m.get("peerURLs", []):
                        peer._call("cluster/member/remove", {"ID": m["ID"]})
                return
            except Unavailable:
                continue

    def images(self) -> str:
        cfg = self.cluster_config()
        repo = cfg.get("imageRepository") or "registry.k8s.io"
        version = cfg.get("kubernetesVersion", f"v{self.patch}")
        names = [f"{repo}/{c}:{version}" for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                                   "kube-proxy")]
        return "\n".join([*names, f"{repo}/coredns/coredns:v1.11.3", f"{repo}/pause:3.10", self.etcd_image()]) + "\n"


def main(host: Host, argv: list[str]) -> int:
    try:
        out = Kubeadm(host, argv).run()
    except (KubeadmError, Unavailable) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    sys.stdout.write(out)
    return 0

