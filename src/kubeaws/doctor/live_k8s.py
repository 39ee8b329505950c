"""The Kubernetes side of `kubeaws doctor --live` (read-only GETs of /api/v1/nodes and kube-system pods):

- `live.node-not-registered` an instance of the cluster's Auto Scaling groups that is no Node (matched by
  spec.providerID `aws:///<az>/<instance-id>` or by the node name = the private DNS name), with the likely
  cause: launched less than 10 minutes ago (still booting), the API port not allowed from the node's
  security groups, an EKS node role not mapped (access entry / aws-auth), else the join itself;
- `live.node-not-ready` a registered node whose Ready condition is not True (its reason and message);
- `live.pod-not-running` kube-system pods not Running/Succeeded, or with containers not ready (the waiting
  reason: CrashLoopBackOff, ImagePullBackOff, ContainerCreating, which on EKS means pods without IPs);
- `live.api-unreachable` (warning) when the API cannot be reached (private endpoint without a tunnel...):
  the AWS-side checks of doctor.live still run.

Credentials: the admin kubeconfig `kubeaws.access.admin_kubeconfig` builds (kubeadm: a one-hour client
certificate signed by the cluster CA from the state bucket; EKS: endpoint and CA from DescribeCluster, and a
token from `kubeaws.eks_auth`). Called by doctor.live.check_live.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from botocore.exceptions import BotoCoreError, ClientError

from kubeaws.aws.retry import RetryPolicy
from kubeaws.aws.session import AwsContext
from kubeaws.doctor.findings import Finding
from kubeaws.errors import KubeawsError
from kubeaws.kube_client import KubeApiError, KubeClient
from kubeaws.spec.models import ClusterSpec

if TYPE_CHECKING:
    from kubeaws.doctor.live import Inventory

#: Instances younger than this are probably still booting and joining.
BOOT_GRACE_SECONDS = 600
KUBE_SYSTEM_PODS = "/api/v1/namespaces/kube-system/pods"
NODES = "/api/v1/nodes"
AWS_AUTH = "/api/v1/namespaces/kube-system/configmaps/aws-auth"


def short_policy(ctx: AwsContext) -> RetryPolicy:
    """A short retry budget: an unreachable endpoint is a finding, not something to wait minutes for."""
    return RetryPolicy(max_attempts=min(3, ctx.policy.max_attempts), base_delay=ctx.policy.base_delay,
                       max_delay=min(2.0, ctx.policy.max_delay))


def connect(spec: ClusterSpec, ctx: AwsContext) -> tuple[KubeClient, str]:
    """A client for the cluster's API with the admin credentials, and the hint that says how to reach a
    private endpoint. Raises KubeawsError when the credentials cannot be made (no state bucket, no EKS
    endpoint yet)."""
    from kubeaws.access import admin_kubeconfig

    config = admin_kubeconfig(spec, ctx, lifetime_hours=1.0)
    doc = yaml.safe_load(config.text)
    cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    policy = short_policy(ctx)
    if "client-certificate-data" in user:
        cert = (base64.b64decode(user["client-certificate-data"]), base64.b64decode(user["client-key-data"]))
        client = KubeClient(config.server, cluster["certificate-authority-data"], None, policy, timeout=10.0,
                            client_cert=cert)
    else:
        from kubeaws.eks_auth import eks_token

        token = str(eks_token(spec.metadata.name, ctx.region, profile=ctx.settings.profile)["status"]["token"])
        client = KubeClient(config.server, cluster["certificate-authority-data"], token, policy, timeout=10.0)
    return client, config.hint


def check_kubernetes(spec: ClusterSpec, ctx: AwsContext, inv: Inventory, *, kube: KubeClient | None = None,
                     now: float | None = None, tunnel: bool = False, ssh_key: Path | None = None) -> list[Finding]:
    """Nodes and kube-system pods, or one `live.api-unreachable` warning. `tunnel`: reach a private endpoint
    through the bastion (kubeaws.reach; `ssh_key` or the SSH agent's keys)."""
    hint = ""
    server = ""
    try:
        with ExitStack() as stack:
            if kube is None and tunnel:
                from kubeaws.reach import api_client

                hint = "check the bastion tunnel: `kubeaws tunnel -f SPEC` says what is wrong with it"
                kube = stack.enter_context(api_client(spec, ctx, short_policy(ctx), ssh_key=ssh_key, timeout=10.0,
                                                      lifetime_hours=1.0))
            elif kube is None:
                kube, hint = connect(spec, ctx)
            server = f"https://{kube.host}:{kube.port}"
            nodes = (kube.get(NODES) or {}).get("items") or []
            pods = (kube.get(KUBE_SYSTEM_PODS) or {}).get("items") or []
            findings = check_nodes(spec, ctx, inv, kube, nodes, time.time() if now is None else now)
    except (KubeawsError, BotoCoreError, ClientError) as exc:
        if isinstance(exc, KubeApiError) and exc.status in (401, 403):
            hint = ("EKS: give your IAM identity cluster access (aws eks create-access-entry --cluster-name "
                    f"{spec.metadata.name} --principal-arn <your role ARN>, then associate-access-policy with "
                    "AmazonEKSClusterAdminPolicy); kubeadm: the API server must trust the CA in the state bucket"
                    if exc.status == 401 or spec.spec.mode == "eks" else hint)
        return [Finding(
            "warning", "live.api-unreachable", f"the Kubernetes API {server or 'of the cluster'} cannot be "
            f"queried ({exc}): node registration and kube-system pods were not checked",
            f"cluster {spec.metadata.name}", hint or "run from a machine that reaches the API endpoint (a public "
            "endpoint allows access.adminCIDRs only; a private one needs the bastion tunnel `kubeaws kubeconfig` "
            "prints)")]
    return findings + check_pods(spec, pods)


# -- nodes ------------------------------------------------------------------------------------------------
def _ready(node: dict[str, Any]) -> dict[str, Any] | None:
    """The node's Ready condition (None when it has none yet)."""
    return next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)


def check_nodes(spec: ClusterSpec, ctx: AwsContext, inv: Inventory, kube: KubeClient, nodes: list[dict[str, Any]],
                now: float) -> list[Finding]:
    """Every InService/Pending instance of the cluster's groups is a Ready node."""
    by_id: dict[str, dict[str, Any]] = {}
    by_name: dict[str, dict[str, Any]] = {}
    for node in nodes:
        provider = str((node.get("spec") or {}).get("providerID") or "")
        if provider.startswith("aws://"):
            by_id[provider.rstrip("/").rsplit("/", 1)[-1]] = node
        by_name[str((node.get("metadata") or {}).get("name"))] = node
    findings = []
    for asg, instance in inv.asg_instances():
        iid = instance["InstanceId"]
        group = asg["AutoScalingGroupName"]
        found = by_id.get(iid) or by_name.get(str(instance.get("PrivateDnsName")))
        if found is None:
            cause, hint = join_cause(spec, ctx, inv, kube, asg, instance, now)
            findings.append(Finding(
                "error", "live.node-not-registered", f"instance {iid} ({instance.get('PrivateDnsName')}) of "
                f"{group} is not a node of the cluster: {cause}", f"Instance/{iid}", hint))
            continue
        ready = _ready(found)
        if ready is None or ready.get("status") != "True":
            name = (found.get("metadata") or {}).get("name")
            why = f"{ready.get('reason')}: {ready.get('message')}" if ready else "no Ready condition yet"
            findings.append(Finding(
                "error", "live.node-not-ready", f"node {name} (instance {iid}, {group}) is not Ready ({why})",
                f"Node/{name}", "usually the CNI is not running on it (see the kube-system pod findings): "
                f"kubectl describe node {name}; kubectl -n kube-system get pods -o wide --field-selector "
                f"spec.nodeName={name}"))
    return findings


def _age(instance: dict[str, Any], now: float) -> float | None:
    launched = instance.get("LaunchTime")
    if isinstance(launched, str):
        launched = dt.datetime.fromisoformat(launched.replace("Z", "+00:00"))
    return now - launched.timestamp() if isinstance(launched, dt.datetime) else None


def join_cause(spec: ClusterSpec, ctx: AwsContext, inv: Inventory, kube: KubeClient, asg: dict[str, Any],
               instance: dict[str, Any], now: float) -> tuple[str, str]:
    """(likely cause, fix) of an instance that is no node, most specific first."""
    age = _age(instance, now)
    if age is not None and age < BOOT_GRACE_SECONDS:
        return (f"launched {int(age // 60)} min ago, probably still booting and joining",
                "wait (`kubeaws doctor -f SPEC --live --wait 10m` re-checks until it has joined)")
    eks = spec.spec.mode == "eks"
    if not (inv.is_control_plane(asg) and not eks):
        blocked = _api_port_blocked(inv, instance, eks)
        if blocked:
            return blocked
    if eks:
        unmapped = _unmapped_role(spec, ctx, inv, kube, instance)
        if unmapped:
            return unmapped
        return ("the node did not register with EKS", "check its bootstrap on the instance (`journalctl -u "
                "kubelet`, nodeadm/bootstrap logs, through SSM): the subnet must reach the EKS endpoint and "
                "ECR (NAT gateway or VPC endpoints), and the user data must name this cluster")
    if inv.is_control_plane(asg):
        return ("kubeadm init/join of this control-plane member did not complete", "read /var/log/cloud-init-"
                "output.log on the instance (through the bastion): etcd data volume, certificates from the state "
                "bucket, or the API endpoint (load balancer) not reachable")
    return ("kubeadm join did not complete", "read /var/log/cloud-init-output.log on the instance (through the "
            "bastion): an expired join token or a wrong CA hash in the state bucket, or the API endpoint (load "
            "balancer, tcp 6443) not reachable from the node's subnet")


def _api_targets(inv: Inventory, eks: bool) -> tuple[set[str], int]:
    if eks:
        vpc = (inv.eks or {}).get("resourcesVpcConfig") or {}
        groups = set(vpc.get("securityGroupIds") or []) | ({vpc["clusterSecurityGroupId"]}
                                                           if vpc.get("clusterSecurityGroupId") else set())
        return groups, 443
    groups = {g["GroupId"] for asg, i in inv.asg_instances() if inv.is_control_plane(asg)
              for g in i.get("SecurityGroups") or []}
    return groups, 6443


def _allows(group: dict[str, Any], port: int, sources: set[str], address: str) -> bool:
    import ipaddress

    for perm in group.get("IpPermissions") or []:
        proto = str(perm.get("IpProtocol"))
        if proto not in ("-1", "tcp", "6"):
            continue
        if proto != "-1" and not int(perm.get("FromPort", 0)) <= port <= int(perm.get("ToPort", 65535)):
            continue
        if any(p.get("GroupId") in sources for p in perm.get("UserIdGroupPairs") or []):
            return True
        for r in perm.get("IpRanges") or []:
            try:
                if address and ipaddress.ip_address(address) in ipaddress.ip_network(r["CidrIp"], strict=False):
                    return True
            except ValueError:
                continue
    return False


def _api_port_blocked(inv: Inventory, instance: dict[str, Any], eks: bool) -> tuple[str, str] | None:
    targets, port = _api_targets(inv, eks)
    groups = [inv.security_groups[g] for g in sorted(targets) if g in inv.security_groups]
    sources = {g["GroupId"] for g in instance.get("SecurityGroups") or []}
    if not groups or not sources:
        return None
    if any(_allows(g, port, sources, str(instance.get("PrivateIpAddress") or "")) for g in groups):
        return None
    target, source = groups[0]["GroupId"], sorted(sources)[0]
    return (f"the control plane's security group(s) {', '.join(g['GroupId'] for g in groups)} allow no tcp {port} "
            f"from the node's group(s) {', '.join(sorted(sources))}: it cannot reach the API server",
            f"aws ec2 authorize-security-group-ingress --group-id {target} --protocol tcp --port {port} "
            f"--source-group {source}")


def _role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _unmapped_role(spec: ClusterSpec, ctx: AwsContext, inv: Inventory, kube: KubeClient,
                   instance: dict[str, Any]) -> tuple[str, str] | None:
    """The EKS node role of the instance when neither an access entry nor aws-auth maps it (None when it
    is mapped, or when the mapping cannot be read)."""
    profile = (instance.get("IamInstanceProfile") or {}).get("Arn")
    if not profile:
        return None
    cluster = spec.metadata.name
    try:
        roles = ctx.call("iam", "get_instance_profile",
                         InstanceProfileName=_role_name(profile))["InstanceProfile"]["Roles"]
    except ClientError:
        return None
    if not roles:
        return (f"its instance profile {profile} has no role", "add the node role to the instance profile")
    role = str(roles[0]["Arn"])
    mode = ((inv.eks or {}).get("accessConfig") or {}).get("authenticationMode") or "CONFIG_MAP"
    known = False
    if mode in ("API", "API_AND_CONFIG_MAP"):
        try:
            entries = ctx.paginate("eks", "list_access_entries", "accessEntries", clusterName=cluster)
            known = True
            if any(_role_name(e) == _role_name(role) for e in entries):
                return None
        except ClientError:
            pass
    if mode in ("CONFIG_MAP", "API_AND_CONFIG_MAP"):
        try:
            config = kube.get(AWS_AUTH)
            known = True
            mapped = yaml.safe_load(((config or {}).get("data") or {}).get("mapRoles") or "[]") or []
            if any(_role_name(str(m.get("rolearn", ""))) == _role_name(role) for m in mapped):
                return None
        except (KubeawsError, yaml.YAMLError):
            pass
    if not known:
        return None
    fix = (f"aws eks create-access-entry --cluster-name {cluster} --principal-arn {role} --type EC2_LINUX"
           if mode != "CONFIG_MAP" else
           f"add {{rolearn: {role}, username: 'system:node:{{{{EC2PrivateDNSName}}}}', groups: "
           "[system:bootstrappers, system:nodes]} to mapRoles of the kube-system/aws-auth ConfigMap")
    return (f"its node role {role} is not mapped in the cluster (authentication mode {mode}): EKS refuses the "
            "node", fix)


# -- pods -------------------------------------------------------------------------------------------------
def _waiting(pod: dict[str, Any]) -> list[str]:
    status = pod.get("status") or {}
    reasons = []
    for c in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state = c.get("state") or {}
        if "waiting" in state:
            reasons.append(str(state["waiting"].get("reason") or "Waiting"))
        elif "terminated" in state and state["terminated"].get("reason") not in (None, "Completed"):
            reasons.append(str(state["terminated"]["reason"]))
    return reasons


def check_pods(spec: ClusterSpec, pods: list[dict[str, Any]]) -> list[Finding]:
    """kube-system pods that are not Running/Succeeded or have containers not ready, like `kops validate
    cluster`."""
    findings = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        phase = status.get("phase") or "Unknown"
        if phase == "Succeeded":
            continue
        not_ready = [c.get("name") for c in status.get("containerStatuses") or [] if not c.get("ready")]
        if phase == "Running" and not not_ready:
            continue
        name = meta.get("name")
        reasons = _waiting(pod)
        unscheduled = next((c for c in status.get("conditions") or []
                            if c.get("type") == "PodScheduled" and c.get("status") == "False"), None)
        if unscheduled:
            reasons.append(f"{unscheduled.get('reason')}: {unscheduled.get('message')}")
        where = f" on {(pod.get('spec') or {}).get('nodeName')}" if (pod.get("spec") or {}).get("nodeName") else ""
        detail = f" ({', '.join(reasons)})" if reasons else (f" (not ready: {', '.join(map(str, not_ready))})"
                                                             if not_ready else "")
        findings.append(Finding("error", "live.pod-not-running", f"pod kube-system/{name} is {phase}{where}{detail}",
                                f"Pod/kube-system/{name}", _pod_hint(spec, str(name), reasons, bool(unscheduled))))
    return findings


def _pod_hint(spec: ClusterSpec, name: str, reasons: list[str], unscheduled: bool) -> str:
    if "ContainerCreating" in reasons and spec.spec.cni == "aws-vpc-cni":
        return ("pods stuck in ContainerCreating with the AWS VPC CNI usually get no IP address (problem 5): see "
                "the ip-capacity findings (free subnet addresses, leaked ENIs, maxPods) and `kubectl -n "
                "kube-system logs ds/aws-node`")
    if "CrashLoopBackOff" in reasons or "Error" in reasons:
        return f"kubectl -n kube-system logs {name} --previous (the last crash)"
    if any(r in ("ImagePullBackOff", "ErrImagePull") for r in reasons):
        return ("the node cannot pull the image: check its outbound access (NAT gateway) or set "
                "mirrors.imageRepository")
    if unscheduled:
        return (f"kubectl -n kube-system describe pod {name}: no node fits it (taints, resources, or no Ready "
                "node yet)")
    return f"kubectl -n kube-system describe pod {name}"
