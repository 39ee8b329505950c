"""The cluster spec file format (apiVersion kubeaws.io/v1alpha1, kind Cluster) as pydantic v2 models.

Field names are snake_case in Python and camelCase in YAML (explicit aliases where the acronym matters:
podCIDR, adminCIDRs...). Structural checks live here (types, enums, ranges, unknown fields); checks that
need several fields (CIDR overlaps, AZs in the region...) live in `spec.validate`.

Called by `spec.load` (parsing), `spec.schema` (JSON Schema) and every later layer, which reads the
resulting `ClusterSpec`.

Besides the file's fields, a loaded spec carries two things that are not in the file (private attributes,
never dumped nor in the schema): where each field was written (`origin`: the file name and the line of every
field path, so that a problem found after loading still names its line: `spec.origin`), and the instance-type
facts it was resolved against (`instance_type_facts`: the bundled table until `spec.resolve` hands it the
table plus AWS's answer, through `with_instance_types`).
"""

from dataclasses import dataclass, field
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from pydantic.alias_generators import to_camel

from kubeaws.spec.instance_types import BUNDLED, InstanceTypes

API_VERSION = "kubeaws.io/v1alpha1"
KIND = "Cluster"
SUPPORTED_KUBERNETES_VERSIONS = ("1.30", "1.31", "1.32", "1.33", "1.34", "1.35", "1.36", "1.37")
DEFAULT_KUBERNETES_VERSION = "1.31"
#: Bounds from AWS and Kubernetes limits, so that a number no AWS call accepts never leaves the spec.
MAX_GROUP_SIZE = 5000  # Kubernetes' largest supported cluster: 5,000 nodes
MAX_AZS = 8  # the most availability zones of any region is 6
MAX_NODE_GROUPS = 1000  # a bound on the model's size; AWS's quotas at this scale are doctor's (quota.*)
MAX_INSTANCE_TYPES = 20  # EKS managed node groups: 20; Auto Scaling mixed-instance overrides: 40
MAX_TAINTS = 50  # EKS managed node groups: 50
MAX_LABELS = 100  # EKS managed node groups: 100
MAX_RULE_CIDRS = 60  # security group rules per direction
MAX_SUBNETS = 20

NodeOS = Literal["ubuntu-22.04", "ubuntu-24.04"]
BastionOS = Literal["al2023", "ubuntu-22.04", "ubuntu-24.04"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel,
                              validate_default=True)


class Metadata(_Model):
    name: str = Field(description="Cluster name: DNS-1123 label, at most 28 characters (`<name>-api` must fit "
                                  "the 32-character load balancer name limit).")
    labels: dict[str, str] = Field(default_factory=dict, max_length=MAX_LABELS)


class VpcSpec(_Model):
    """Either `cidr` (kubeaws creates the VPC) or `id` (bring an existing VPC and its subnets)."""

    cidr: str | None = Field(default=None, description="CIDR of a VPC kubeaws creates, e.g. 10.0.0.0/16.")
    id: str | None = Field(default=None, description="ID of an existing VPC (vpc-...); needs network.subnets.")

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if self.cidr and self.id:
            raise ValueError("set either cidr (a new VPC) or id (an existing VPC), not both")
        if not self.cidr and not self.id:
            self.cidr = "10.0.0.0/16"
        return self


class SubnetsSpec(_Model):
    """Existing subnets, when bringing a VPC."""

    public: list[str] = Field(default_factory=list, max_length=MAX_SUBNETS,
                              description="Existing public subnet IDs (subnet-...).")
    private: list[str] = Field(default_factory=list, max_length=MAX_SUBNETS,
                               description="Existing private subnet IDs (subnet-...).")


class SecurityGroupsSpec(_Model):
    """Existing security groups to use instead of the ones kubeaws creates, per role (needs a brought VPC).

    kubeaws only tags a brought group `kubernetes.io/cluster/<name>=shared` (removed on delete); it never adds,
    changes or removes its rules: they are yours. `kubeaws doctor` reads them and names every rule the cluster
    still needs, with the `aws ec2 authorize-security-group-ingress` command that adds it."""

    control_plane: str | None = Field(
        default=None, description="Existing security group (sg-...) for the control-plane nodes (kubeadm) or the "
                                  "EKS cluster's additional security group (eks).")
    nodes: str | None = Field(default=None, description="Existing security group (sg-...) for the worker nodes.")
    bastion: str | None = Field(default=None, description="Existing security group (sg-...) for the bastion.")
    load_balancer: str | None = Field(
        default=None, description="Existing security group (sg-...) for the Kubernetes API load balancer "
                                  "(kubeadm only: EKS runs its own endpoint).")


class CalicoSpec(_Model):
    encapsulation: Literal["ipip", "vxlan"] = Field(default="ipip", description="Calico overlay mode.")


class NetworkSpec(_Model):
    vpc: VpcSpec = Field(default_factory=VpcSpec)
    subnets: SubnetsSpec | None = None
    availability_zones: list[str] = Field(default_factory=list, max_length=MAX_AZS,
                                          description="AZs of the region to use.")
    nat_gateway: Literal["none", "single", "perAZ"] | None = Field(
        default=None, description="Default: single for a new VPC, none for a brought VPC.")
    pod_cidr: str = Field(default="192.168.0.0/16", alias="podCIDR")
    service_cidr: str = Field(default="10.96.0.0/12", alias="serviceCIDR")
    cni: Literal["calico", "flannel", "cilium", "aws-vpc-cni"] | None = Field(
        default=None, description="Default: calico for kubeadm, aws-vpc-cni for eks.")
    calico: CalicoSpec = Field(default_factory=CalicoSpec)
    node_port_cidrs: list[str] | None = Field(
        default=None, alias="nodePortCIDRs", max_length=MAX_RULE_CIDRS,
        description="Who may reach NodePorts 30000-32767. Default: the VPC CIDR only.")
    private_subnet_prefix: int | None = Field(default=None, ge=16, le=28,
                                              description="Prefix length of each private subnet.")
    public_subnet_prefix: int | None = Field(default=None, ge=16, le=28,
                                             description="Prefix length of each public subnet.")
    security_groups: SecurityGroupsSpec | None = Field(
        default=None, description="Existing security groups per role (needs vpc.id); kubeaws creates the others.")


    @property
    def nat_mode(self) -> str:
        """The NAT layout in effect."""
        if self.nat_gateway:
            return self.nat_gateway
        return "none" if self.vpc.id else "single"


class BastionSpec(_Model):
    enabled: bool = True
    instance_type: str = "t3.micro"
    ami: str | None = Field(default=None, description="Explicit AMI ID; default: the OS's public SSM parameter.")
    os: BastionOS = "al2023"
    elastic_ip: bool = Field(default=False, alias="elasticIP")


class AccessSpec(_Model):
    api_endpoint: Literal["private", "public"] = "private"
    admin_cidrs: list[str] = Field(default_factory=list, alias="adminCIDRs", max_length=MAX_RULE_CIDRS,
                                   description="Who may reach SSH on the bastion and a public API endpoint.")
    allow_world_access: bool = Field(default=False, description="Required to put 0.0.0.0/0 in adminCIDRs.")
    bastion: BastionSpec = Field(default_factory=BastionSpec)
    ssh_key_name: str | None = Field(default=None, description="Existing EC2 key pair for SSH.")


class VolumeSpec(_Model):
    size: int = Field(ge=1, le=16384, description="GiB.")
    type: Literal["gp3", "gp2", "io1", "io2", "st1", "sc1"] = "gp3"
    iops: int | None = Field(default=None, ge=100, le=256000)
    throughput: int | None = Field(default=None, ge=125, le=2000)


def _volume(size: int) -> Any:
    return Field(default_factory=lambda: VolumeSpec(size=size))


class ControlPlaneSpec(_Model):
    count: int = Field(default=1, ge=1, le=5, description="1, 3 or 5 members (etcd quorum).")
    instance_type: str = "m5.large"
    schedulable: bool = Field(default=False, description="Remove the control-plane taint (not recommended).")
    ami: str | None = None
    os: NodeOS = "ubuntu-22.04"
    root_volume: VolumeSpec = _volume(50)
    etcd_volume: VolumeSpec = _volume(20)


class SizeSpec(_Model):
    min: int = Field(default=1, ge=0, le=MAX_GROUP_SIZE)
    desired: int = Field(default=1, ge=0, le=MAX_GROUP_SIZE)
    max: int = Field(default=3, ge=0, le=MAX_GROUP_SIZE)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.min <= self.desired <= self.max:
            raise ValueError(f"needs min <= desired <= max, got min={self.min} desired={self.desired} "
                             f"max={self.max}")
        return self


Amount = int | str


def _amount(value: Amount | None, field: str) -> None:
    if value is None or isinstance(value, int):
        if isinstance(value, int) and not 0 <= value <= MAX_GROUP_SIZE:
            raise ValueError(f"{field} must be 0-{MAX_GROUP_SIZE}, got {value}")
        return
    digits = value[:-1] if value.endswith("%") else ""
    if not digits.isdigit() or not 0 <= int(digits) <= 100:
        raise ValueError(f"{field} must be a count or a percentage such as `25%`, got `{value}`")


class RolloutSpec(_Model):
    """How `kubeaws rollout` replaces a node group's instances (kops semantics): `maxSurge` new instances are
    launched and Ready before a batch is drained, `maxUnavailable` more may be down at once; a count or a
    percentage of the group's desired size (surge rounded up, unavailable down). Both 0 means 1 unavailable."""

    max_surge: Amount | None = Field(default=None, description="New instances started before a batch is "
                                     "drained (default 1).")
    max_unavailable: Amount | None = Field(default=None, description="Instances of a batch that may be down "
                                           "at once beyond the surge (default 0).")

    @model_validator(mode="after")
    def _amounts(self) -> Self:
        _amount(self.max_surge, "maxSurge")
        _amount(self.max_unavailable, "maxUnavailable")
        return self


class TaintSpec(_Model):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class NodeGroupSpec(_Model):
    name: str
    type: Literal["self-managed", "managed"] = "self-managed"
    instance_types: list[str] = Field(default_factory=lambda: ["m5.large"], min_length=1,
                                      max_length=MAX_INSTANCE_TYPES)
    capacity: Literal["on-demand", "spot"] = "on-demand"
    size: SizeSpec = Field(default_factory=SizeSpec)
    team: str | None = Field(default=None, description="Team owning the group (DNS-1123 label, e.g. payments): "
                                                       "node label and instance/volume tag `kubeaws.io/team`.")
    name_pattern: str | None = Field(
        default=None, description="AWS name of this group's Auto Scaling group / managed node group and launch "
                                  "template; overrides spec.nodeGroupNamePattern (placeholders as there).")
    labels: dict[str, str] = Field(default_factory=dict, max_length=MAX_LABELS)
    taints: list[TaintSpec] = Field(default_factory=list, max_length=MAX_TAINTS)
    max_pods: int | None = Field(default=None, ge=1, le=737)
    tags: dict[str, str] = Field(default_factory=dict)
    extra_volumes: list[VolumeSpec] = Field(default_factory=list,
                                            description="Raw, unformatted EBS disks (e.g. for Rook/Ceph).")
    ami: str | None = None
    os: NodeOS = "ubuntu-22.04"
    root_volume: VolumeSpec = _volume(50)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec,
                                 description="How `kubeaws rollout` replaces this group's instances.")
    _instance_types: InstanceTypes | None = PrivateAttr(default=None)

    @property
    def instance_type_facts(self) -> InstanceTypes:
        """The instance-type facts of the spec this group belongs to (`ClusterSpec.with_instance_types`); the
        bundled table until the spec was resolved."""
        return self._instance_types or BUNDLED

    def __eq__(self, other: object) -> bool:
        """Equal when the file's fields are (what the spec carries besides them is not compared)."""
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__


class AddonSpec(_Model):
    """An addon without options: `{}` enables it (any key is an unknown field)."""


class RookCephSpec(_Model):
    node_selector: dict[str, str] | None = Field(
        default=None, max_length=1, description="One `label: value` choosing the storage nodes; default: the "
                                                "self-managed node groups with extraVolumes.")


class AddonsSpec(_Model):
    """Each addon is a map of its options; present means enabled."""

    cloud_provider_aws: AddonSpec | None = Field(default=None, alias="cloudProviderAWS")
    ebs_csi: AddonSpec | None = Field(default=None, alias="ebsCSI")
    metrics_server: AddonSpec | None = None
    cluster_autoscaler: AddonSpec | None = None
    rook_ceph: RookCephSpec | None = None
    aws_load_balancer_controller: AddonSpec | None = None


class EtcdBackupSpec(_Model):
    every_minutes: int = Field(default=30, ge=5, le=1440)
    keep: int = Field(default=48, ge=1, le=10000)


class MirrorsSpec(_Model):
    image_repository: str | None = Field(default=None, description="Registry prefix for every image.")
    packages: str | None = Field(default=None, description=(
        "Base URL every boot-time download goes through; it serves `core:/stable:/v<minor>/deb/` (the pkgs.k8s.io "
        "apt repository), `pypi.org/simple/` (awscli and its dependencies, for Ubuntu 24.04) and "
        "`<host>/<path>` of each pinned upstream file (docs/kubeadm.md, \"Mirrors\")."))


class IamSpec(_Model):
    control_plane_role: str | None = Field(default=None, description="Existing role name or ARN to use.")
    node_role: str | None = Field(default=None, description="Existing role name or ARN to use.")


class EksEncryptionSpec(_Model):
    enabled: bool = True
    kms_key_arn: str | None = None


class EksSpec(_Model):
    authentication_mode: Literal["API", "API_AND_CONFIG_MAP", "CONFIG_MAP"] = "API"
    logging: list[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]] = Field(
        default_factory=list, max_length=5)
    encryption: EksEncryptionSpec = Field(default_factory=EksEncryptionSpec)
    prefix_delegation: bool = False


class ClusterBody(_Model):
    region: str
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    mode: Literal["kubeadm", "eks"] = "kubeadm"
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    access: AccessSpec = Field(default_factory=AccessSpec)
    control_plane: ControlPlaneSpec = Field(default_factory=ControlPlaneSpec)
    node_groups: list[NodeGroupSpec] = Field(default_factory=list, max_length=MAX_NODE_GROUPS)
    node_group_name_pattern: str | None = Field(
        default=None, description="AWS names of the node groups (Auto Scaling group or managed node group, launch "
                                  "template, instances' Name tag), with placeholders {cluster}, {name}, {team}, "
                                  "{spec} (e.g. 2cpu-8gib), {shape} (e.g. 8c64g: 8 vCPUs, 64 GiB), {capacity}; e.g. "
                                  "{team}-{spec}-{cluster}. Unset: "
                                  "{cluster}-{name} (launch templates <cluster>-ng-<name>).")
    addons: AddonsSpec = Field(default_factory=AddonsSpec)
    etcd_backup: EtcdBackupSpec | None = Field(default_factory=EtcdBackupSpec)
    mirrors: MirrorsSpec = Field(default_factory=MirrorsSpec)
    iam: IamSpec = Field(default_factory=IamSpec)
    eks: EksSpec = Field(default_factory=EksSpec)
    tags: dict[str, str] = Field(default_factory=dict, description="Put on every resource kubeaws creates.")

    @property
    def cni(self) -> str:
        """The CNI in effect (the default depends on the mode)."""
        if self.network.cni:
            return self.network.cni
        return "aws-vpc-cni" if self.mode == "eks" else "calico"


@dataclass(frozen=True)
class Origin:
    """Where a spec was read from: the file name and the line of each field path (YAML names, list indices)."""

    source: str = ""
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def line(self, parts: tuple[str | int, ...] | list[str | int]) -> int | None:
        """The line of the field at `parts`, else of its nearest written parent (None when nothing is known)."""
        key = tuple(parts)
        while key not in self.lines and key:
            key = key[:-1]
        return self.lines.get(key)


class ClusterSpec(_Model):
    api_version: Literal["kubeaws.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["Cluster"]
    metadata: Metadata
    spec: ClusterBody
    _instance_types: InstanceTypes | None = PrivateAttr(default=None)
    _origin: Origin | None = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def instance_type_facts(self) -> InstanceTypes:
        """The instance-type facts this spec was resolved against; the bundled table until then."""
        return self._instance_types or BUNDLED

    @property
    def origin(self) -> Origin:
        """Where the spec was read from (empty for a spec not loaded from YAML text)."""
        return self._origin or Origin()

    def __eq__(self, other: object) -> bool:
        """Equal when the file's fields are (what the spec carries besides them is not compared)."""
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def with_origin(self, origin: Origin) -> Self:
        """This spec, remembering where it was read from (`spec.load` calls it)."""
        self._origin = origin
        return self

    def with_instance_types(self, types: InstanceTypes) -> "ClusterSpec":
        """A copy of this spec whose node groups read their instance types' facts from `types` (`spec.resolve`
        calls it once every type is known there). Only what carries the facts is copied (the root, its body and
        each node group); the rest is shared, as nothing changes a loaded spec in place: a deep copy of a
        300-group spec took longer than building its model."""
        groups = [group.model_copy() for group in self.spec.node_groups]
        for group in groups:
            group._instance_types = types
        copy = self.model_copy(update={"spec": self.spec.model_copy(update={"node_groups": groups})})
        copy._instance_types = types
        return copy
