"""The two clusters of the real-AWS suite, as copies of examples/dev.yaml rewritten for one run: a unique
name, the region and availability zones of the run, the runner's address as the only admin CIDR, every
addon the smoke workload exercises, and the control-plane size of the variant.

The API endpoint of the copies is PUBLIC (restricted to the runner's /32): the examples keep it private
behind the bastion, which needs a tunnel that kubeaws does not have yet (TODO in tests/aws/README.md).

Pure (no AWS call): unit-tested in test_helpers.py, where the copies also go through `kubeaws.load_spec` and
the static doctor checks.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEV_EXAMPLE = REPO / "examples" / "dev.yaml"
#: spec.tags entry carried by every resource of a run (helps find the leftovers of an interrupted run).
RUN_TAG = "kubeaws-e2e-run"
#: Addons the smoke workload needs: LoadBalancer Services, EBS volumes, `kubectl top`, scale-up.
ADDONS = ("cloudProviderAWS", "ebsCSI", "metricsServer", "clusterAutoscaler")
MAX_NAME = 28
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Variant:
    """One cluster of the suite."""

    key: str
    control_plane: int
    title: str


DEV = Variant("dev", 1, "examples/dev.yaml: 1 control-plane member, node group `general` (2 x m5.large)")
HA = Variant("ha", 3, "examples/dev.yaml with controlPlane.count 3 (one member per AZ)")
VARIANTS = (DEV, HA)


def cluster_name(variant: Variant, run_id: str) -> str:
    """`e2e-<variant>-<run id>`: unique per run, a DNS label of at most 28 characters (kubeaws' limit)."""
    name = f"e2e-{variant.key}-{run_id}"
    if len(name) > MAX_NAME or not DNS_LABEL.match(name):
        raise ValueError(f"cluster name {name!r} is not a DNS label of at most {MAX_NAME} characters")
    return name


def load_example(path: Path = DEV_EXAMPLE) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a YAML mapping")
    return doc


def rewrite_spec(doc: Mapping[str, Any], *, name: str, region: str, azs: Sequence[str], admin_cidr: str,
                 control_plane: int, run_id: str, ssh_key: str | None = None) -> dict[str, Any]:
    """A copy of `doc` for one run (the input is not modified). See the module docstring."""
    if control_plane > len(azs):
        raise ValueError(f"{control_plane} control-plane members need {control_plane} availability zones, got "
                         f"{list(azs)}")
    out: dict[str, Any] = copy.deepcopy(dict(doc))
    out.setdefault("metadata", {})["name"] = name
    body: dict[str, Any] = out.setdefault("spec", {})
    body["region"] = region
    body.setdefault("network", {})["availabilityZones"] = list(azs)
    access: dict[str, Any] = body.setdefault("access", {})
    # TODO(kubeaws tunnel): keep the example's private endpoint and go through `kubeaws tunnel` once it exists.
    access["apiEndpoint"] = "public"
    access["adminCIDRs"] = [admin_cidr]
    access.pop("allowWorldAccess", None)
    if ssh_key:
        access["sshKeyName"] = ssh_key
    body.setdefault("controlPlane", {})["count"] = control_plane
    addons: dict[str, Any] = body.setdefault("addons", {})
    for addon in ADDONS:
        if addons.get(addon) is None:
            addons[addon] = {}
    body.setdefault("tags", {})[RUN_TAG] = run_id
    groups = body.get("nodeGroups") or []
    if not groups:
        raise ValueError("the example has no node group: the smoke workload and the autoscaler test need one")
    size = groups[0].get("size") or {}
    if int(size.get("max", 3)) <= int(size.get("desired", 1)):
        raise ValueError(f"node group {groups[0].get('name')}: size.max must exceed size.desired for the "
                         "cluster-autoscaler test")
    return out


def dump_spec(doc: Mapping[str, Any], variant: Variant) -> str:
    header = (f"# kubeaws real-AWS suite (tests/aws): {variant.title}.\n"
              "# Generated from examples/dev.yaml for one run; delete the cluster with:\n"
              "#   kubeaws delete -f <this file> --yes\n")
    return header + yaml.safe_dump(dict(doc), sort_keys=False)


def instance_types(doc: Mapping[str, Any]) -> set[str]:
    """Every instance type the spec launches (control plane, node groups, bastion), with kubeaws' defaults."""
    body = doc.get("spec") or {}
    types = {str((body.get("controlPlane") or {}).get("instanceType", "m5.large"))}
    for group in body.get("nodeGroups") or []:
        types.update(str(t) for t in group.get("instanceTypes") or ["m5.large"])
    bastion = (body.get("access") or {}).get("bastion") or {}
    if bastion.get("enabled", True):
        types.add(str(bastion.get("instanceType", "t3.micro")))
    return types


def node_group(doc: Mapping[str, Any]) -> tuple[str, int]:
    """(name, desired size) of the spec's first node group: where the smoke workload and the scale-up run."""
    group = ((doc.get("spec") or {}).get("nodeGroups") or [{}])[0]
    return str(group["name"]), int((group.get("size") or {}).get("desired", 1))


def expected_nodes(doc: Mapping[str, Any]) -> int:
    """Nodes right after apply: the control-plane members and every node group's desired size."""
    body = doc.get("spec") or {}
    count = int((body.get("controlPlane") or {}).get("count", 1))
    return count + sum(int((g.get("size") or {}).get("desired", 1)) for g in body.get("nodeGroups") or [])


def pick_azs(available: Iterable[str], offered: Mapping[str, Iterable[str]], preferred: Sequence[str],
             count: int = 3) -> list[str]:
    """`count` availability zones that offer every instance type (`offered`: type -> AZs): the preferred ones
    (the example's) when they all qualify, else the first qualifying ones in name order."""
    offers = {t: set(azs) for t, azs in offered.items()}
    eligible = sorted(az for az in set(available) if all(az in azs for azs in offers.values()))
    if len(preferred) >= count and all(az in eligible for az in preferred[:count]):
        return list(preferred[:count])
    if len(eligible) < count:
        missing = {t: sorted(set(available) - azs) for t, azs in offers.items() if set(available) - azs}
        raise ValueError(f"only {len(eligible)} availability zone(s) offer every instance type "
                         f"({', '.join(sorted(offers))}), {count} needed; not offered: {missing}")
    return eligible[:count]
