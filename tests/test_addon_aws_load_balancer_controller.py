"""The AWS Load Balancer Controller, the addon that proves one descriptor is its one home: its manifests (CRDs
vendored verbatim first, every document valid), its permissions (the upstream policy in the cluster's partition,
scoped to this cluster by the controller's tag; kubeadm: the node role, EKS: an IRSA role), its webhook flow
and its objects on EKS, all read from kubeaws/addons/descriptors/aws_load_balancer_controller.py."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import yaml

from kubeaws.addons import DESCRIPTORS, render_manifests, vendored, versions
from kubeaws.addons.descriptors import aws_load_balancer_controller as lbc
from kubeaws.model import build
from kubeaws.model.flows import required_flows
from kubeaws.model.iam import control_plane_policy, node_policy
from kubeaws.resources.base import Computed, Ref
from tests.helpers import make_spec

ON = {"awsLoadBalancerController": {}}
EKS = {"mode": "eks", "kubernetesVersion": "1.31",
       "network": {"availabilityZones": ["us-east-1a", "us-east-1b"], "cni": "aws-vpc-cni"},
       "access": {"apiEndpoint": "public", "adminCIDRs": ["203.0.113.0/24"]},
       "nodeGroups": [{"name": "general", "instanceTypes": ["m5.large"]}]}
#: IAM's limit on the inline policies of one role, whitespace not counted.
ROLE_INLINE_LIMIT = 10240


def docs(spec: Any) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render_manifests(spec)["aws-load-balancer-controller.yaml"]) if d]


def test_registered_by_its_module_alone() -> None:
    assert lbc.ADDON in DESCRIPTORS and DESCRIPTORS[-1] is lbc.ADDON
    assert lbc.ADDON.spec_path == "spec.addons.awsLoadBalancerController"
    assert "aws-load-balancer-controller.yaml" not in render_manifests(make_spec())


def test_manifests_crds_first_and_valid() -> None:
    spec = make_spec(addons=ON)
    found = docs(spec)
    kinds = [d["kind"] for d in found]
    assert kinds[:4] == ["CustomResourceDefinition"] * 4
    assert {d["metadata"]["name"] for d in found[:4]} == {
        "albtargetcontrolconfigs.elbv2.k8s.aws", "globalaccelerators.aga.k8s.aws",
        "ingressclassparams.elbv2.k8s.aws", "targetgroupbindings.elbv2.k8s.aws"}
    version = versions.kubernetes_patch(spec.spec.kubernetes_version)
    for doc in found:
        kubernetes_validate.validate(doc, version, strict=True)
    deployment = next(d for d in found if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True  # the node role's credentials at hop limit 1
    assert "--cluster-name=dev" in pod["containers"][0]["args"]
    assert pod["containers"][0]["ports"][0]["containerPort"] == 9443
    # the webhooks' certificate is made in the cluster: no key in what kubeaws renders
    assert "PRIVATE KEY" not in render_manifests(spec)["aws-load-balancer-controller.yaml"]
    hooks = [h for d in found if d["kind"].endswith("WebhookConfiguration") for h in d["webhooks"]]
    assert len(hooks) == 6 and not any("caBundle" in h["clientConfig"] for h in hooks)


def test_the_crds_are_the_vendored_upstream_file_verbatim() -> None:
    text = render_manifests(make_spec(addons=ON))["aws-load-balancer-controller.yaml"]
    crds = vendored.read("aws-load-balancer-controller", "crds.yaml", lbc.VERSION)
    assert text.startswith(crds)
    entry = vendored.find("aws-load-balancer-controller", "crds.yaml", lbc.VERSION)
    assert entry.repository == "github.com/kubernetes-sigs/aws-load-balancer-controller"
    assert entry.commit == "11eb202c97e4ae2ee45e0658c4cde9a4b59f33d4"
    assert entry.upstream_path == "helm/aws-load-balancer-controller/crds/crds.yaml"


def test_images_go_through_the_mirror() -> None:
    spec = make_spec(addons=ON, mirrors={"imageRepository": "registry.example.cn/k8s"})
    images = [c["image"] for d in docs(spec) if d["kind"] in ("Deployment", "Job")
              for c in [*d["spec"]["template"]["spec"]["containers"],
                        *d["spec"]["template"]["spec"].get("initContainers", [])]]
    assert images and all(i.startswith("registry.example.cn/k8s/") for i in images), images


def test_policy_is_upstream_scoped_to_the_cluster_in_its_partition() -> None:
    upstream = json.loads(vendored.read("aws-load-balancer-controller", "iam_policy.json", lbc.VERSION))
    policy = lbc.policy("dev", "aws-us-gov")
    by_sid = {st["Sid"]: st for st in policy["Statement"]}
    assert len(by_sid) == len(policy["Statement"]) == len(upstream["Statement"]) + len(lbc.SPLIT)
    text = json.dumps(policy)
    assert "arn:aws:" not in text and "arn:aws-us-gov:elasticloadbalancing:*:*:targetgroup/*/*" in text
    scoped = 0
    for index, theirs in enumerate(upstream["Statement"], 1):
        ours = by_sid[f"LoadBalancerController{index:02d}"]
        split = by_sid.get(f"LoadBalancerController{index:02d}Resources", {"Action": []})
        assert sorted(ours["Action"] + split["Action"]) == sorted(theirs["Action"])  # no action added or lost
        assert ours["Effect"] == theirs["Effect"] == "Allow"
        null = theirs.get("Condition", {}).get("Null", {})
        for key, value in null.items():
            if key.endswith("/elbv2.k8s.aws/cluster") and value == "false":
                assert ours["Condition"]["StringEquals"][key] == "dev"
                assert key not in ours["Condition"].get("Null", {})
                scoped += 1
    ingress = by_sid["LoadBalancerController04"]
    assert ingress["Condition"] == {"StringLike": {"aws:ResourceTag/kubernetes.io/cluster/dev": ["owned", "shared"]}}
    assert scoped == 7  # every statement the upstream scopes by the tag


def test_kubeadm_node_role_has_it_the_control_plane_does_not() -> None:
    names = ("cloud-provider-aws", "ebs-csi", "cluster-autoscaler", "aws-load-balancer-controller")
    node = node_policy("dev", "bucket", names)
    assert any(s["Sid"].startswith("LoadBalancerController") for s in node["Statement"])
    assert not any(s["Sid"].startswith("LoadBalancerController")
                   for s in control_plane_policy("dev", "bucket", names)["Statement"])
    for policy in (node, control_plane_policy("dev", "bucket", names)):
        assert len(json.dumps(policy, separators=(",", ":"))) < ROLE_INLINE_LIMIT
    graph = build(make_spec(addons=ON))
    inline = graph["IamRole/node"].props["inline_policies"]["kubeaws-node"]
    assert isinstance(inline, Computed) and "aws-load-balancer-controller" in inline.args["addons"]


def test_webhook_flow_from_the_control_plane_to_the_nodes() -> None:
    for spec in (make_spec(addons=ON), make_spec(**EKS, addons=ON)):
        flows = required_flows(spec, "10.0.0.0/16")
        assert any(f.source == "control-plane" and f.target == "nodes" and f.protocol == "tcp"
                   and f.from_port == 9443 for f in flows), spec.spec.mode
    assert not any(f.from_port == 9443 for f in required_flows(make_spec(), "10.0.0.0/16"))
    rules = build(make_spec(addons=ON))["SecurityGroupRules/nodes"].props["ingress"]
    assert any(r["from_port"] == 9443 and r.get("source_group") == Ref("SecurityGroup", "control-plane")
               for r in rules), rules


def test_eks_irsa_role_and_objects() -> None:
    graph = build(make_spec(**EKS, addons=ON))
    role = graph["IamRole/aws-load-balancer-controller"].props
    assert role["inline_policies"]["kubeaws-aws-load-balancer-controller"] == lbc.policy("dev", "aws")
    assert "aws-load-balancer-controller" not in {d.props["addon_name"] for d in graph.of_kind("EksAddon")}
    objects = {d.name: d for d in graph.of_kind("KubernetesObject")}
    assert "customresourcedefinition/targetgroupbindings.elbv2.k8s.aws" in objects
    sa = objects["serviceaccount/kube-system/aws-load-balancer-controller"].props["manifest"]
    assert sa.args["role_arn"] == Ref("IamRole", "aws-load-balancer-controller", "arn")
    doc = sa.fn(**{**sa.args, "role_arn": "arn:aws:iam::123456789012:role/x"})
    assert doc["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/x"
    dep = objects["deployment/kube-system/aws-load-balancer-controller"].props["manifest"]
    pod = dep.fn(**dep.args)["spec"]["template"]["spec"]
    assert "hostNetwork" not in pod  # IRSA on EKS, no node credentials
