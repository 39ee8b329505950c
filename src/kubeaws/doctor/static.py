"""Static doctor checks: `check_spec(spec, graph, facts) -> Report`, the mistakes that break a cluster found
from the spec and the graph `model.build` makes, in milliseconds, before anything is deployed (no AWS call, no
boto3). `facts` (doctor.brought) carries what read-only describes found about brought resources; the caller
reads them, and the checks that use them stay pure.

Each check is a pure function `(spec, graph) -> list[Finding]` registered in `CHECKS` (those marked
`uses_facts` also take `facts`); the network and
capacity ones live in doctor.network and doctor.capacity, the control plane, EKS join, discovery tags and
artifact reachability ones here. Tests call the functions directly on mutated graphs.

Called by `kubeaws doctor` (kubeaws.cli.doctor) and tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kubeaws.aws.tags import k8s_cluster_tag
from kubeaws.doctor.brought import BroughtFacts
from kubeaws.doctor.capacity import check_ip_capacity, check_quotas, check_storage
from kubeaws.doctor.findings import Finding, Report
from kubeaws.doctor.network import (
    check_access,
    check_addressing,
    check_exposure,
    check_pod_network,
    checked_flows,
)
from kubeaws.errors import KubeawsError, SpecError
from kubeaws.model.common import node_group_of
from kubeaws.model.flows import CONTROL_PLANE, NODE_ROLES, cni_flows
from kubeaws.model.graph import Graph
from kubeaws.model.nodegroups import CA, autoscaler_tags
from kubeaws.resources.base import Desired
from kubeaws.spec.layout import LayoutError
from kubeaws.spec.models import ClusterSpec, NodeGroupSpec

CheckFn = Callable[..., list[Finding]]  # (spec, graph) or, with uses_facts, (spec, graph, facts)
#: Regions without reliable access to public registries and package repositories.
ISOLATED_REGION_PREFIXES = ("cn-",)
NODE_TEMPLATE = f"{CA}/node-template/"
#: The KubernetesObject name of the aws-auth ConfigMap (resources/kubernetes_object.py).
AWS_AUTH = "configmap/kube-system/aws-auth"


@dataclass(frozen=True)
class Check:
    """A registered check: its id prefix, the function, and whether it reads the graph (checks that do not
    still run when the graph cannot be built)."""

    name: str
    fn: CheckFn
    needs_graph: bool = True
    uses_facts: bool = False


def check_control_plane(spec: ClusterSpec, graph: Graph, facts: BroughtFacts | None = None) -> list[Finding]:
    """kubeadm: a schedulable control plane (pods there need the pod-traffic rules; says whether they are
    there), a single member without etcd backups (problem 9), a single member (not highly available)."""
    body = spec.spec
    if body.mode != "kubeadm":
        return []
    cp = body.control_plane
    findings: list[Finding] = []
    if cp.schedulable:
        pod_purposes = {p for _, _, _, p in cni_flows(body.cni, body.network.calico.encapsulation)}
        pod_flows = [(f, ok) for f, ok in checked_flows(spec, graph, facts)
                     if f.source in NODE_ROLES and f.target in NODE_ROLES and CONTROL_PLANE in (f.source, f.target)
                     and (f.purpose in pod_purposes or f.purpose.startswith("DNS"))]
        missing = sorted({f"{f.source} -> {f.target} {f.purpose}" for f, ok in pod_flows if not ok})
        state = ("the pod-traffic rules between the control plane and the nodes are present" if not missing
                 else "the pod-traffic rules are MISSING: " + "; ".join(missing))
        findings.append(Finding(
            "warning", "control-plane.schedulable",
            f"controlPlane.schedulable removes the control-plane taint: workloads share the machines running "
            f"etcd and the API server, and their pods need pod traffic to and from the control plane ({state})",
            "spec.controlPlane.schedulable", "keep the control plane dedicated (schedulable: false) unless the "
            "cluster is tiny"))
    if body.access.api_endpoint == "public" and body.network.vpc.id:
        findings.append(Finding(
            "warning", "control-plane.public-endpoint-nat", "a public API endpoint in a brought VPC: nodes and "
            "control-plane members reach it through your NAT, from its public addresses, which kubeaws does not "
            "know", "spec.access.apiEndpoint",
            "allow your NAT gateways' public addresses on tcp 6443 in the API load balancer's security group "
            "(spec.network.securityGroups.loadBalancer, or adminCIDRs), or use apiEndpoint: private"))
    if cp.count == 1:
        if body.etcd_backup is None:
            findings.append(Finding(
                "error", "control-plane.no-etcd-backup", "a single control-plane member without etcdBackup: if "
                "its etcd volume is lost, so is the cluster", "spec.etcdBackup",
                "add `etcdBackup: {everyMinutes: 30, keep: 48}` (snapshots to the state bucket), and consider "
                "controlPlane.count: 3"))
        findings.append(Finding(
            "info", "control-plane.single-member", "one control-plane member is not highly available: the API "
            "is down while its Auto Scaling group replaces it", "spec.controlPlane.count",
            "use controlPlane.count: 3 for production"))
    return findings


def check_eks_join(spec: ClusterSpec, graph: Graph) -> list[Finding]:
    """EKS (problem 4): the node role is mapped: an AccessEntry for the API authentication modes; with
    CONFIG_MAP the aws-auth ConfigMap must be applied (warning unless the graph carries it)."""
    body = spec.spec
    if body.mode != "eks" or not body.node_groups:
        return []
    mode = body.eks.authentication_mode
    if mode in ("API", "API_AND_CONFIG_MAP"):
        entries = [d for d in graph.of_kind("AccessEntry") if d.props.get("type") == "EC2_LINUX"]
        if entries:
            return []
        return [Finding("error", "eks-join.no-access-entry", f"authentication mode {mode} but no EC2_LINUX "
                        "access entry maps the node role: nodes never join", "AccessEntry/node",
                        "create an access entry of type EC2_LINUX for the node role (kubeaws does so; this is "
                        "a regression or a brought role left out)")]
    self_managed = [ng.name for ng in body.node_groups if ng.type == "self-managed"]
    if not self_managed or _has_aws_auth(graph):
        return []
    return [Finding("warning", "eks-join.aws-auth", f"authentication mode CONFIG_MAP: the self-managed node "
                    f"group(s) {', '.join(self_managed)} join only once the node role is in the kube-system/"
                    "aws-auth ConfigMap, and nothing in the plan applies it", "spec.eks.authenticationMode",
                    "apply eks/aws-auth.yaml from `kubeaws render` with kubectl right after the cluster is "
                    "created, or use authenticationMode: API (access entries)")]


def _has_aws_auth(graph: Graph) -> bool:
    """Whether the graph applies kube-system/aws-auth (by the KubernetesObject name, or by a literal
    manifest's metadata; the model's manifest is a Computed filled in at plan time)."""
    for d in graph.of_kind("KubernetesObject"):
        if d.name == AWS_AUTH:
            return True
        manifest = d.props.get("manifest")
        meta = (manifest.get("metadata") or {}) if isinstance(manifest, dict) else {}
        if meta.get("name") == "aws-auth" and meta.get("namespace") == "kube-system":
            return True
    return False


def _group_of(spec: ClusterSpec, desired: Desired) -> NodeGroupSpec | None:
    """The node group an Auto Scaling group or EKS node group comes from (by its spec path); None otherwise."""
    if desired.kind not in ("AutoScalingGroup", "EksNodegroup"):
        return None
    name = node_group_of(desired.spec_path)
    return next((ng for ng in spec.spec.node_groups if ng.name == name), None)


def check_discovery_tags(spec: ClusterSpec, graph: Graph) -> list[Finding]:
    """Problem 6: launch templates (and the instances they tag), Auto Scaling groups and managed node groups
    carry `kubernetes.io/cluster/<name>`; node groups carry the cluster-autoscaler discovery tags and
    node-template tags equal to their labels and taints; instances carry the spec's tags (team/cost)."""
    cluster = spec.metadata.name
    tag = k8s_cluster_tag(cluster)
    findings: list[Finding] = []

    def add(check: str, key: str, message: str, hint: str, severity: str = "error") -> None:
        findings.append(Finding(severity, check, f"{key}: {message}", key, hint))  # type: ignore[arg-type]

    for d in [*graph.of_kind("LaunchTemplate"), *graph.of_kind("AutoScalingGroup"), *graph.of_kind("EksNodegroup")]:
        if tag not in d.tags:
            add("discovery-tags.cluster-tag", d.key, f"missing the {tag} tag",
                f"tag it {tag}=owned (EKS and the cloud provider find the cluster's resources by it)")
        if d.kind == "LaunchTemplate":
            instance_tags = d.props.get("instance_tags") or {}
            if instance_tags.get(tag) not in ("owned", "shared"):
                add("discovery-tags.cluster-tag", d.key, f"instances are not tagged {tag}",
                    "add the tag to the launch template's instance tags")
            missing = sorted(k for k in spec.spec.tags if k not in instance_tags)  # a group may override
            if missing:
                add("discovery-tags.spec-tags", d.key, f"instances miss the spec's tags {', '.join(missing)}",
                    "put spec.tags on the launch template's instance and volume tags", "warning")
        ng = _group_of(spec, d)
        if ng is None:
            continue
        expected = autoscaler_tags(cluster, ng)
        wrong = sorted(k for k, v in expected.items() if not k.startswith(NODE_TEMPLATE) and d.tags.get(k) != v)
        if wrong:
            add("discovery-tags.autoscaler", d.key, f"cluster-autoscaler tags missing or wrong: {', '.join(wrong)}",
                "the cluster-autoscaler discovers groups by k8s.io/cluster-autoscaler/enabled and "
                f"k8s.io/cluster-autoscaler/{cluster}")
        want = {k: v for k, v in expected.items() if k.startswith(NODE_TEMPLATE)}
        have = {k: v for k, v in d.tags.items() if k.startswith(NODE_TEMPLATE)}
        if want != have:
            diff = sorted(set(want.items()) ^ set(have.items()))
            add("discovery-tags.node-template", d.key, "node-template tags differ from the group's labels/taints: "
                + ", ".join(f"{k}={v}" for k, v in diff),
                "node-template label/taint tags must equal nodeGroups[].labels/taints, or scale-from-zero "
                "picks the wrong group")
    return findings


def check_node_groups(spec: ClusterSpec, graph: Graph) -> list[Finding]:
    """Problem 6, how the cluster-autoscaler and people find a group: a group mixing instance sizes is labelled
    and described (scale-from-zero node template) as its FIRST type only; a first type outside the spec's
    instance-type facts (the bundled table, plus AWS's answer once resolved) gets no instance-spec label; a
    name pattern without {cluster} can clash with another cluster's."""
    from kubeaws.spec.nodegroups import name_pattern

    findings: list[Finding] = []
    for i, ng in enumerate(spec.spec.node_groups):
        path = f"spec.nodeGroups[{i}]"
        sizes = {itype: ng.instance_type_facts.instance_spec(itype) for itype in ng.instance_types}
        first = ng.instance_types[0]
        if sizes[first] is None:
            findings.append(Finding(
                "info", "node-groups.unknown-instance-spec", f"node group {ng.name}: {first} is not in kubeaws' "
                "instance-type table, so its nodes get no kubeaws.io/instance-spec label", f"{path}.instanceTypes",
                "set the size label yourself under nodeGroups[].labels if workloads select on it"))
        distinct = sorted({size for size in sizes.values() if size})
        if len(distinct) > 1:
            findings.append(Finding(
                "warning", "node-groups.mixed-sizes", f"node group {ng.name} mixes instance sizes "
                f"({', '.join(f'{t} {sizes[t]}' for t in ng.instance_types if sizes[t])}): its instance-spec label "
                f"and the cluster-autoscaler's scale-from-zero template describe {first} ({sizes[first]}) only",
                f"{path}.instanceTypes", "list types of one size per group (e.g. m5.large, m5a.large, m6i.large), "
                "or split the group by size"))
        pattern = name_pattern(spec, ng)
        if pattern and "{cluster}" not in pattern:
            findings.append(Finding(
                "warning", "node-groups.pattern-without-cluster", f"node group {ng.name}: name pattern {pattern!r} "
                "has no {cluster}: another cluster in the same account and region can want the same names (plan "
                "then refuses to adopt them)", f"{path}.namePattern" if ng.name_pattern else
                "spec.nodeGroupNamePattern", "add {cluster} to the pattern, e.g. {team}-{spec}-{cluster}"))
    return findings


def check_artifacts(spec: ClusterSpec, graph: Graph) -> list[Finding]:
    """Problem 8: images and packages reachable: isolated regions (China) need mirrors; a new VPC without a
    NAT gateway needs mirrors reachable from inside it."""
    body = spec.spec
    mirrors = body.mirrors
    needed = {"mirrors.imageRepository": mirrors.image_repository}
    if body.mode == "kubeadm":  # EKS nodes boot the EKS AMI: no Kubernetes packages to download
        needed["mirrors.packages"] = mirrors.packages
    missing = [name for name, value in needed.items() if not value]
    unset = f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set"
    findings: list[Finding] = []
    if body.region.startswith(ISOLATED_REGION_PREFIXES) and missing:
        findings.append(Finding(
            "error", "artifacts.isolated-region", f"region {body.region} cannot reliably pull from public "
            f"registries and package repositories, and {unset}", "spec.mirrors",
            "set mirrors.imageRepository (a registry reachable from the region, e.g. an ECR mirror) and "
            "mirrors.packages (a mirror of the Kubernetes packages)"))
    nat = body.network.nat_mode
    if nat == "none" and not body.network.vpc.id and missing:
        findings.append(Finding(
            "error", "artifacts.no-egress", f"natGateway none in a new VPC: nodes have no way out, and "
            f"{unset}", "spec.network.natGateway",
            "use natGateway: single, or set mirrors to sources reachable from the VPC (VPC endpoints)"))
    elif nat == "none" and body.network.vpc.id:
        findings.append(Finding(
            "info", "artifacts.brought-egress", "natGateway none in a brought VPC: outbound access of its "
            "subnets is not checked statically", "spec.network.natGateway",
            "make sure the private subnets route to a NAT gateway or VPC endpoints"))
    return findings


CHECKS: list[Check] = [
    Check("pod-network", check_pod_network, uses_facts=True),
    Check("control-plane", check_control_plane, uses_facts=True),
    Check("storage", check_storage, needs_graph=False),
    Check("eks-join", check_eks_join),
    Check("ip-capacity", check_ip_capacity, needs_graph=False, uses_facts=True),
    Check("discovery-tags", check_discovery_tags),
    Check("addressing", check_addressing, needs_graph=False, uses_facts=True),
    Check("exposure", check_exposure, uses_facts=True),
    Check("access", check_access, needs_graph=False),
    Check("artifacts", check_artifacts, needs_graph=False),
    Check("node-groups", check_node_groups, needs_graph=False),
    Check("quota", check_quotas),
]


def check_spec(spec: ClusterSpec, graph: Graph | None = None, facts: BroughtFacts | None = None) -> Report:
    """Run every check. `graph` defaults to `model.build(spec)`; when it cannot be built, the reasons become
    error findings (`spec.build`) and only the checks that do not need the graph run. `facts`: what
    `doctor.brought.brought_facts` read about the brought resources (None: their rules and free addresses
    are not checked)."""
    findings: list[Finding] = []
    if graph is None:
        from kubeaws.model import build

        try:
            graph = build(spec)
        except SpecError as exc:
            findings += [Finding("error", "spec.build", p.message, p.path, p.hint) for p in exc.problems]
        except (KubeawsError, LayoutError) as exc:
            findings.append(Finding("error", "spec.build", str(exc), "spec"))
    for check in CHECKS:
        target = graph if graph is not None else None if check.needs_graph else Graph(spec.metadata.name,
                                                                                      spec.spec.mode)
        if target is None:
            continue
        findings += check.fn(spec, target, facts) if check.uses_facts else check.fn(spec, target)
    return Report(findings)
