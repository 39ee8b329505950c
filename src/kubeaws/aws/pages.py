"""Page sizes of the AWS listings kubeaws makes: every paginated describe/list asks for an explicit page (the
largest each API allows, under the name that API gives it: MaxResults, MaxRecords, PageSize, MaxItems,
maxResults, Limit, ResourcesPerPage, MaxKeys) and follows its tokens (`AwsContext.paginate`).

Why explicit: an API's default page differs from service to service (and from AWS to emulators: the local
emulator's DescribeLaunchTemplates returned 15 without a token), the EC2 "unfiltered and unpaginated" reads
draw on a smaller request-token bucket than paginated ones (aws/ratelimit.py), and the largest page makes the
fewest calls at 100-300 node groups.

Read by `AwsContext.paginate`; `tests/test_pages.py` holds every listing in kubeaws' source to this table and
the table to botocore's models (the parameter exists, the size is within the model's bounds).
"""

from __future__ import annotations

from typing import Any

#: (service, boto3 operation) -> the largest page the API takes (AWS API references; where botocore's model
#: declares a maximum it is the same, checked by tests/test_pages.py).
PAGE_SIZES: dict[tuple[str, str], int] = {
    # EC2: MaxResults
    ("ec2", "describe_instances"): 1000,
    ("ec2", "describe_instance_types"): 100,
    ("ec2", "describe_instance_type_offerings"): 1000,
    ("ec2", "describe_internet_gateways"): 1000,
    ("ec2", "describe_launch_templates"): 200,
    ("ec2", "describe_launch_template_versions"): 200,
    ("ec2", "describe_nat_gateways"): 1000,
    ("ec2", "describe_network_interfaces"): 1000,
    ("ec2", "describe_route_tables"): 100,
    ("ec2", "describe_security_groups"): 1000,
    ("ec2", "describe_snapshots"): 1000,
    ("ec2", "describe_subnets"): 1000,
    ("ec2", "describe_volumes"): 500,
    ("ec2", "describe_vpc_peering_connections"): 1000,
    ("ec2", "describe_vpcs"): 1000,
    # Auto Scaling: MaxRecords
    ("autoscaling", "describe_auto_scaling_groups"): 100,
    # Elastic Load Balancing (v1 and v2): PageSize
    ("elb", "describe_load_balancers"): 400,
    ("elbv2", "describe_listeners"): 400,
    ("elbv2", "describe_load_balancers"): 400,
    ("elbv2", "describe_target_groups"): 400,
    # EKS: maxResults
    ("eks", "describe_addon_versions"): 100,
    ("eks", "list_access_entries"): 100,
    ("eks", "list_addons"): 100,
    ("eks", "list_associated_access_policies"): 100,
    ("eks", "list_clusters"): 100,
    ("eks", "list_nodegroups"): 100,
    # IAM: MaxItems
    ("iam", "get_account_authorization_details"): 1000,
    ("iam", "list_attached_role_policies"): 1000,
    ("iam", "list_instance_profiles"): 1000,
    ("iam", "list_instance_profiles_for_role"): 1000,
    ("iam", "list_role_policies"): 1000,
    # KMS: Limit (ListAliases 1-100, ListResourceTags 1-50 per the KMS API reference)
    ("kms", "list_aliases"): 100,
    ("kms", "list_resource_tags"): 50,
    # Resource Groups Tagging API: ResourcesPerPage
    ("resourcegroupstaggingapi", "get_resources"): 100,
    # S3: MaxKeys
    ("s3", "list_objects_v2"): 1000,
}

#: Parameters that name what to describe: a listing by IDs or names is as long as the list given, and some
#: EC2 describes refuse a page size next to them (DescribeInstances with InstanceIds, for one).
_BY_NAME = ("Ids", "Names", "Arns", "ResourceArns", "Versions")


def with_page_size(service: str, operation: str, limit_key: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """`params` with the API's page size under `limit_key` (botocore's pagination config names it), unless
    the caller gave one, the listing is by IDs or names, or the operation has no entry in PAGE_SIZES."""
    size = PAGE_SIZES.get((service, operation))
    if size is None or not limit_key or limit_key in params:
        return params
    if any(key.endswith(_BY_NAME) and value for key, value in params.items()):
        return params
    return {**params, limit_key: size}
