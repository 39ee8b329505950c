"""EC2 launch templates (kind `LaunchTemplate`): what the control-plane and node-group Auto Scaling groups
launch (docs/kubeadm.md).

Security floor, enforced here whatever the model asks: IMDSv2 is required (HttpTokens=required) and every
block device is encrypted; a Desired saying otherwise is refused with `InsecureLaunchTemplate`. User data is
given as text (or bytes, e.g. gzip) and base64-encoded here. Instances and their volumes are tagged through
the template's TagSpecifications (`instance_tags`, `volume_tags`). A block device whose `device_name` is None
is the root volume: its device name comes from the AMI (one DescribeImages on create/update).

Re-plans stay cheap: `list_owned` is ONE DescribeLaunchTemplates (owned tag filter), and the version data is
never read back. Instead a hash of the props (`content_hash`, without the name and the Desired's create_only
props) is stored in the tag `kubeaws.io/content-hash`; the diff compares hashes and reports `content_hash`.
An update creates a new version, makes it the default, then rewrites the hash tag (a crash in between
shows as a diff again). It deletes no version: Auto Scaling groups are pinned to explicit versions, and
`kubeaws rollout` moves them and then prunes the versions no group uses (`prune_versions`; not on the local
emulator, which lacks DeleteLaunchTemplateVersions).

Called by the engine through the registry; `content_hash` / `hashed_props` also by model/ builders.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import is_owned_by, tag_list
from kubeaws.errors import KubeawsError
from kubeaws.resources._autoscaling import until_profile_visible
from kubeaws.resources._ec2 import after_create, ignoring
from kubeaws.resources.base import Desired, Diff, Kind, Observed, contains_unknown, normalize
from kubeaws.resources.instance import DEFAULT_ROOT_DEVICE, metadata_params
from kubeaws.resources.registry import register

HASH_TAG = "kubeaws.io/content-hash"
NOT_FOUND = ("InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateName.NotFoundException",
             "InvalidLaunchTemplateId.Malformed")
#: Security groups created a moment ago may not be visible yet.
CONSISTENCY_CODES = ("InvalidGroup.NotFound", "InvalidAMIID.NotFound")
#: Versions kept per template: the default and the ones just before it (to roll back to, and what a managed
#: node group still uses while it moves to the new one). Older ones are deleted after each new version, so
#: a template never nears AWS's limit of 10,000 versions.
KEEP_VERSIONS = 10
EBS_NAMES = {"size": "VolumeSize", "volume_type": "VolumeType", "iops": "Iops", "throughput": "Throughput",
             "delete_on_termination": "DeleteOnTermination", "snapshot_id": "SnapshotId"}


class InsecureLaunchTemplate(KubeawsError):
    """A launch template without IMDSv2 or with an unencrypted volume: kubeaws never creates one."""


def hashed_props(props: Mapping[str, Any], create_only: Iterable[str] = ()) -> dict[str, Any]:
    """The props that make up a template's content (what `content_hash` covers)."""
    skip = {"name", *create_only}
    return {k: v for k, v in props.items() if k not in skip}


def content_hash(props: Mapping[str, Any]) -> str:
    """Stable digest of concrete launch-template props (sets sorted, None dropped). Pure: also used through
    `Computed(content_hash, {"props": hashed_props(...)})` by the model for Auto Scaling groups."""
    canon = dict(normalize(dict(props)))
    if isinstance(canon.get("security_group_ids"), list):
        canon["security_group_ids"] = sorted(canon["security_group_ids"], key=str)
    return hashlib.sha256(json.dumps(canon, sort_keys=True, default=str).encode()).hexdigest()[:32]


def check(desired: Desired) -> None:
    """Refuse a template without IMDSv2 or with an unencrypted block device."""
    tokens = (desired.props.get("metadata_options") or {}).get("http_tokens", "required")
    if tokens != "required":
        raise InsecureLaunchTemplate(
            f"{desired.key}: metadata_options.http_tokens is {tokens!r}; kubeaws launch templates always "
            "require IMDSv2 (http_tokens: required)")
    for dev in desired.props.get("block_devices") or []:
        if dev.get("encrypted", True) is not True:
            raise InsecureLaunchTemplate(
                f"{desired.key}: block device {dev.get('device_name') or 'root'} is not encrypted; kubeaws "
                "encrypts every EBS volume it launches")


#: EC2's limit on user data, before base64.
USER_DATA_LIMIT = 16384


def encode_user_data(user_data: str | bytes) -> str:
    """Base64 of the user data; text over EC2's 16 KB limit is sent gzip-compressed (cloud-init decompresses
    gzip user data before reading it). Only the encoding is compressed: the content hash covers the text, so
    a different zlib never changes a launch template."""
    raw = user_data.encode() if isinstance(user_data, str) else user_data
    if len(raw) > USER_DATA_LIMIT and not raw.startswith(b"\x1f\x8b"):
        raw = gzip.compress(raw, compresslevel=9, mtime=0)
    if len(raw) > USER_DATA_LIMIT:
        raise ValueError(f"user data is {len(raw)} bytes even compressed (EC2 limit {USER_DATA_LIMIT})")
    return base64.b64encode(raw).decode("ascii")


@register
class LaunchTemplate(Kind):
    """A launch template whose content is tracked by a hash tag; updated by new default versions."""

    kind = "LaunchTemplate"
    rank = 60
    immutable = frozenset({"name"})
    name_field = "name"

    def observe(self, item: Mapping[str, Any]) -> Observed:
        tags = self.tags_of(item)
        fields = {"name": item["LaunchTemplateName"], "content_hash": tags.get(HASH_TAG)}
        attrs = {"name": item["LaunchTemplateName"], "content_hash": tags.get(HASH_TAG),
                 "default_version": item.get("DefaultVersionNumber"),
                 "latest_version": item.get("LatestVersionNumber")}
        return Observed(self.kind, item["LaunchTemplateId"], fields, tags, "", attrs)

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        items = ctx.paginate("ec2", "describe_launch_templates", "LaunchTemplates", Filters=self.owned_filter(ctx))
        return self.owned_only(ctx, [self.observe(i) for i in items])

    def find_conflict(self, ctx: AwsContext, desired: Desired) -> Observed | None:
        """Launch template names are unique per region: one of the same name that is not ours blocks us."""
        name = desired.props.get("name")
        found = ignoring(lambda: ctx.call("ec2", "describe_launch_templates", LaunchTemplateNames=[name]),
                         NOT_FOUND) if isinstance(name, str) else None
        items = [self.observe(i) for i in (found or {}).get("LaunchTemplates", [])]
        return next((o for o in items if not is_owned_by(o.tags, ctx.cluster)), None)

    def diff(self, actual: Observed, desired: Desired) -> Diff:
        """`name` and tags as usual; the content as one hash (`content_hash`)."""
        check(desired)
        changes = super().diff(actual, replace(desired, props={"name": desired.props.get("name")}))
        content = hashed_props(desired.props, desired.create_only)
        want = content if contains_unknown(content) else content_hash(content)
        if contains_unknown(want) or actual.fields.get("content_hash") != want:
            changes["content_hash"] = (actual.fields.get("content_hash"), want)
        return changes

    # -- request -----------------------------------------------------------------------------------
    def _root_device(self, ctx: AwsContext, image_id: str) -> str:
        images = after_create(ctx, lambda: ctx.call("ec2", "describe_images", ImageIds=[image_id]),
                              ["InvalidAMIID.NotFound"], f"image {image_id} visible").get("Images", [])
        return str(images[0].get("RootDeviceName") or DEFAULT_ROOT_DEVICE) if images else DEFAULT_ROOT_DEVICE

    def template_data(self, ctx: AwsContext, desired: Desired) -> dict[str, Any]:
        """LaunchTemplateData for `desired` (IMDSv2 and encryption forced)."""
        check(desired)
        p = desired.props
        options = {"http_endpoint": "enabled", **(p.get("metadata_options") or {}), "http_tokens": "required"}
        devices = []
        for dev in p.get("block_devices") or []:
            ebs = {aws: dev[ours] for ours, aws in EBS_NAMES.items() if dev.get(ours) is not None}
            name = dev.get("device_name") or self._root_device(ctx, p["image_id"])
            devices.append({"DeviceName": name, "Ebs": {**ebs, "Encrypted": True}})
        data: dict[str, Any] = {
            "SecurityGroupIds": sorted(p.get("security_group_ids") or []),
            "MetadataOptions": metadata_params(options),
            "BlockDeviceMappings": devices,
            "TagSpecifications": [{"ResourceType": rtype, "Tags": tag_list(p.get(key) or {})}
                                  for rtype, key in (("instance", "instance_tags"), ("volume", "volume_tags"))
                                  if p.get(key)],
        }
        if p.get("image_id"):  # none for EKS managed node groups: EKS picks the AMI
            data["ImageId"] = p["image_id"]
        if p.get("instance_type"):
            data["InstanceType"] = p["instance_type"]
        if p.get("key_name"):
            data["KeyName"] = p["key_name"]
        if p.get("iam_instance_profile"):
            data["IamInstanceProfile"] = {"Name": p["iam_instance_profile"]}
        if p.get("user_data"):
            data["UserData"] = encode_user_data(p["user_data"])
        return data

    def _hash(self, desired: Desired) -> str:
        return content_hash(hashed_props(desired.props, desired.create_only))

    # -- change ------------------------------------------------------------------------------------
    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        digest = self._hash(desired)
        data = self.template_data(ctx, desired)
        tags = {**desired.tags, HASH_TAG: digest}
        params = {"LaunchTemplateName": desired.props["name"], "LaunchTemplateData": data,
                  "VersionDescription": f"kubeaws {digest[:12]}",
                  "ClientToken": ctx.client_token(f"{desired.key}#{digest[:16]}"),
                  "TagSpecifications": [{"ResourceType": "launch-template", "Tags": tag_list(tags)}]}
        made = until_profile_visible(ctx, lambda: after_create(
            ctx, lambda: ctx.call("ec2", "create_launch_template", **params),
            CONSISTENCY_CODES, "security groups visible"), "the instance profile to be usable")["LaunchTemplate"]
        return self.observe({**made, "Tags": tag_list(tags)})

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        rest = set(diff) - {"tags", "content_hash"}
        if rest:
            raise NotImplementedError(f"{self.kind} cannot update {sorted(rest)} in place")
        fields, tags, attrs = dict(actual.fields), dict(actual.tags), dict(actual.attrs)
        if "tags" in diff:
            self.set_tags(ctx, actual.id, diff["tags"][1])
            tags.update(diff["tags"][1])
        if "content_hash" in diff:
            digest = self._hash(desired)
            data = self.template_data(ctx, desired)
            version = until_profile_visible(ctx, lambda: after_create(
                ctx, lambda: ctx.call("ec2", "create_launch_template_version", LaunchTemplateId=actual.id,
                                      LaunchTemplateData=data, VersionDescription=f"kubeaws {digest[:12]}",
                                      ClientToken=ctx.client_token(f"{desired.key}#{digest[:16]}")),
                CONSISTENCY_CODES, "security groups visible"),
                "the instance profile to be usable")["LaunchTemplateVersion"]
            number = version["VersionNumber"]
            ctx.call("ec2", "modify_launch_template", LaunchTemplateId=actual.id, DefaultVersion=str(number))
            self.set_tags(ctx, actual.id, {HASH_TAG: digest})  # completion marker
            tags[HASH_TAG] = fields["content_hash"] = attrs["content_hash"] = digest
            attrs.update(default_version=number, latest_version=number)
        return Observed(self.kind, actual.id, fields, tags, actual.state, attrs)

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        ignoring(lambda: ctx.call("ec2", "delete_launch_template", LaunchTemplateId=actual.id), NOT_FOUND)


def prune_versions(ctx: AwsContext, template_id: str, default: int, in_use: frozenset[int] = frozenset()
                   ) -> list[int]:
    """Delete the versions older than the KEEP_VERSIONS newest up to `default` (never the default, never one
    in `in_use`: a version an Auto Scaling group launches); return the deleted version numbers. Best effort:
    a failure leaves old versions for the next rollout to prune."""
    cutoff = min([default, *in_use]) - KEEP_VERSIONS
    if cutoff < 1:
        return []
    try:
        old = ctx.paginate("ec2", "describe_launch_template_versions", "LaunchTemplateVersions",
                           LaunchTemplateId=template_id, MaxVersion=str(cutoff))
        numbers = sorted(n for v in old if (n := int(v["VersionNumber"])) <= cutoff and not v.get("DefaultVersion")
                         and n not in in_use)
        deleted: list[int] = []
        for i in range(0, len(numbers), 200):  # DeleteLaunchTemplateVersions takes at most 200
            batch = numbers[i:i + 200]
            resp = ctx.call("ec2", "delete_launch_template_versions", LaunchTemplateId=template_id,
                            Versions=[str(n) for n in batch])
            deleted += [int(d["VersionNumber"]) for d in resp.get("SuccessfullyDeletedLaunchTemplateVersions", [])]
        return deleted
    except (ClientError, BotoCoreError):
        return []
