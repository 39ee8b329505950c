"""The kubectl stand-in of the bootstrap sandbox: the subcommands and flags the boot scripts use, held to
kubectl's command line (kubectl reference, https://kubernetes.io/docs/reference/kubectl/generated/: unknown
flags are errors, `taint` of a missing taint and `delete` of a missing object fail unless
`--ignore-not-found`), against the sandbox's API (tests/sandbox/apistore.py) reached through the kubeconfig's
server as tests/sandbox/host.py resolves it. `apply` refuses a custom resource whose CRD was not applied
first and a namespaced object whose namespace does not exist, as the API server does; `wait --for
condition=established crd/NAME` succeeds once that CRD was applied.

Called by tests/sandbox/standins.py for the `kubectl` command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from tests.sandbox.apistore import Api, Unavailable
from tests.sandbox.host import Host, resolve_api

GLOBAL = {"kubeconfig": True, "namespace": True, "n": True, "request-timeout": True, "v": True}
FLAGS: dict[str, dict[str, bool]] = {  # flag -> takes a value
    "get": {"raw": True, "output": True, "o": True, "ignore-not-found": False, "selector": True, "l": True},
    "apply": {"server-side": False, "force-conflicts": False, "filename": True, "f": True, "field-manager": True},
    "wait": {"for": True, "timeout": True},
    "taint": {"overwrite": False},
    "delete": {"ignore-not-found": False, "wait": False, "timeout": True},
}
SHORT = {"n": "namespace", "o": "output", "f": "filename", "l": "selector"}
BUILTIN_GROUPS = {"", "v1", "apps", "batch", "policy", "autoscaling", "rbac.authorization.k8s.io", "storage.k8s.io",
                  "apiextensions.k8s.io", "admissionregistration.k8s.io", "apiregistration.k8s.io",
                  "networking.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "node.k8s.io",
                  "discovery.k8s.io", "certificates.k8s.io", "flowcontrol.apiserver.k8s.io"}
CLUSTER_SCOPED = {"Namespace", "Node", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "StorageClass",
                  "CSIDriver", "CSINode", "PriorityClass", "APIService", "ValidatingWebhookConfiguration",
                  "MutatingWebhookConfiguration", "PersistentVolume", "IngressClass", "RuntimeClass",
                  "VolumeSnapshotClass", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
INITIAL_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}


class KubectlError(Exception):
    pass


def plural(kind: str) -> str:
    low = kind.lower()
    if low.endswith("y"):
        return low[:-1] + "ies"
    return low + ("es" if low.endswith(("s", "x")) else "s")


def parse(argv: list[str]) -> tuple[dict[str, str], list[str], str]:
    """(flags, positional args, subcommand); unknown flags are errors as in kubectl."""
    flags: dict[str, str] = {}
    args: list[str] = []
    command = ""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and arg != "-":
            name, eq, value = arg.lstrip("-").partition("=")
            allowed = {**GLOBAL, **FLAGS.get(command, {})}
            if name not in allowed:
                raise KubectlError(f"error: unknown flag: {arg.split('=')[0]}\nSee 'kubectl {command} --help' "
                                   "for usage.")
            if allowed[name] and not eq:
                i += 1
                if i >= len(argv):
                    raise KubectlError(f"error: flag needs an argument: {arg}")
                value = argv[i]
            flags[SHORT.get(name, name)] = value if (allowed[name] or eq) else "true"
        elif not command:
            command = arg
            if command not in FLAGS:
                raise KubectlError(f'error: unknown command "{command}" for "kubectl"')
        else:
            args.append(arg)
        i += 1
    return flags, args, command


def api_for(host: Host, flags: dict[str, str]) -> Api:
    path = Path(flags.get("kubeconfig") or host.root / "root/.kube/config")
    if not path.exists():
        raise KubectlError(f"error: stat {path}: no such file or directory")
    kubeconfig = yaml.safe_load(path.read_text())
    return resolve_api(host.world, kubeconfig["clusters"][0]["cluster"]["server"])


def documents(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for doc in yaml.load_all(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        if not doc:
            continue
        out.extend(doc.get("items") or [] if doc.get("kind") == "List" else [doc])
    return out


def apply(api: Api, path: Path) -> str:
    lines = []
    namespaces = INITIAL_NAMESPACES | {n["metadata"]["name"] for n in api.list("namespaces")}
    for obj in documents(path):
        kind, version = obj["kind"], obj["apiVersion"]
        group = version.split("/")[0] if "/" in version else ""
        if group not in BUILTIN_GROUPS:
            crds = [c for c in api.list("customresourcedefinitions")
                    if c["spec"]["group"] == group and c["spec"]["names"]["kind"] == kind]
            if not crds:
                raise KubectlError(f'error: resource mapping not found for name: "{obj["metadata"]["name"]}" '
                                   f'namespace: "" from "{path}": no matches for kind "{kind}" in version '
                                   f'"{version}"\nensure CRDs are installed first')
        meta = obj["metadata"]
        if kind not in CLUSTER_SCOPED:
            meta.setdefault("namespace", "default")
            if meta["namespace"] not in namespaces:
                raise KubectlError(f'Error from server (NotFound): namespaces "{meta["namespace"]}" not found')
        elif kind == "Namespace":
            namespaces.add(meta["name"])
        api.put(plural(kind), obj)
        lines.append(f"{plural(kind).rstrip('s')}/{meta['name']} serverside-applied")
    return "\n".join(lines) + "\n"


def run(host: Host, argv: list[str]) -> str:
    flags, args, command = parse(argv)
    api = api_for(host, flags)
    if command == "get":
        if "raw" in flags:
            if flags["raw"] not in ("/readyz", "/healthz", "/livez"):
                raise KubectlError(f"Error from server (NotFound): the server could not find {flags['raw']}")
            return "ok"
        if args[:1] in (["nodes"], ["node"]):
            nodes = api.list("nodes") if len(args) == 1 else [api.get("nodes", args[1])]
            return "\n".join(n["metadata"]["name"] for n in nodes if n) + "\n"
        raise KubectlError(f"the sandbox's kubectl does not emulate `get {' '.join(args)}`")
    if command == "apply":
        if "server-side" not in flags:
            raise KubectlError("the boot scripts apply server-side only")
        return apply(api, Path(flags["filename"]))
    if command == "wait":
        (target,) = args
        resource, _, name = target.partition("/")
        if flags.get("for") != "condition=established" or resource not in ("crd", "customresourcedefinition"):
            raise KubectlError(f"the sandbox's kubectl does not emulate `wait {target} --for {flags.get('for')}`")
        if api.get("customresourcedefinitions", name) is None:
            raise KubectlError(f'Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io "{name}" '
                               "not found")
        return f"customresourcedefinition.apiextensions.k8s.io/{name} condition met\n"
    if command == "taint":
        resource, name, *changes = args
        node = api.get("nodes", name)
        if resource not in ("node", "nodes") or node is None:
            raise KubectlError(f'Error from server (NotFound): nodes "{name}" not found')
        for change in changes:
            key, _, effect = change.rstrip("-").partition(":")
            before = node["spec"].get("taints", [])
            kept = [t for t in before if not (t["key"] == key and (not effect or t["effect"] == effect))]
            if change.endswith("-") and len(kept) == len(before):
                raise KubectlError(f'error: taint "{change.rstrip("-")}" not found')
            node["spec"]["taints"] = kept
        api.put("nodes", node)
        return f"node/{name} untainted\n"
    if command == "delete":
        resource, name = args
        if resource not in ("node", "nodes"):
            raise KubectlError(f"the sandbox's kubectl does not emulate `delete {resource}`")
        if not api.delete("nodes", name) and "ignore-not-found" not in flags:
            raise KubectlError(f'Error from server (NotFound): nodes "{name}" not found')
        return f'node "{name}" deleted\n'
    raise KubectlError(f"the sandbox's kubectl does not emulate `{command}`")


def main(host: Host, argv: list[str]) -> int:
    try:
        sys.stdout.write(run(host, argv))
    except (KubectlError, Unavailable, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0
