"""The bundled EC2 instance-type table: network limits (for max pods, `model.maxpods`), vCPUs and memory (for
the `kubeaws.io/instance-spec` label and the `{spec}` placeholder of node-group names, `spec.nodegroups`).

`instance_types.json` ({type: {enis, ipv4_per_eni, vcpus, memory_mib}}) covers the common families. There is
no AWS access where it is generated: its source is moto's copy of `ec2:DescribeInstanceTypes`
(`moto/ec2/resources/instance_types.json.gz`, fields NetworkInfo.MaximumNetworkInterfaces,
NetworkInfo.Ipv4AddressesPerInterface, VCpuInfo.DefaultVCpus, MemoryInfo.SizeInMiB). Regenerate it with::

    python - <<'EOF'
    import gzip, json
    from importlib.resources import files
    families = "t3 t3a m5 m5a m6i m7i c5 c6i r5 r5a r6i i3 g4dn t4g m6g m7g c7g r7g".split()
    raw = json.load(gzip.open(files("moto.ec2.resources") / "instance_types.json.gz"))
    table = {name: {"enis": t["NetworkInfo"]["MaximumNetworkInterfaces"],
                    "ipv4_per_eni": t["NetworkInfo"]["Ipv4AddressesPerInterface"],
                    "vcpus": t["VCpuInfo"]["DefaultVCpus"],
                    "memory_mib": t["MemoryInfo"]["SizeInMiB"]}
             for name, t in sorted(raw.items()) if name.split(".")[0] in families}
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in table.items()]
    open("src/kubeaws/spec/instance_types.json", "w").write("{\\n" + ",\\n".join(lines) + "\\n}\\n")
    EOF

(with AWS access, `aws ec2 describe-instance-types` gives the same fields). Add a family to `families` and
rerun to extend it.

A type newer than the table is not refused for that: `InstanceTypes` is the lookup the rest of kubeaws reads,
the table plus what ec2:DescribeInstanceTypes answered for the names the table lacks (`from_describe` turns
its answer into entries; the AWS call itself is made by `kubeaws.api`, which may reach AWS). `BUNDLED` is the
table alone: what `render`, `doctor` and a spec not yet resolved against AWS see (`spec.resolve`).

Lives in the spec layer because spec validation (`{spec}` in name patterns, max pods) and the node bootstrap
(the label kubelet registers with) need it, and neither may import the model. Pure: reads only the bundled
file and the data it is given.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from kubeaws.errors import KubeawsError

MIB_PER_GIB = 1024


@dataclass(frozen=True)
class InstanceTypeInfo:
    """What kubeaws knows of one instance type (from ec2:DescribeInstanceTypes)."""

    enis: int
    ipv4_per_eni: int
    vcpus: int
    memory_mib: int


class UnknownInstanceType(KubeawsError, LookupError):
    """An instance type missing from the lookup (the bundled table unless told otherwise). `suggestions` holds
    close matches."""

    def __init__(self, instance_type: str, suggestions: list[str], where: str = "kubeaws' instance-type table"
                 ) -> None:
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"instance type {instance_type!r} is not in {where}{hint}")
        self.instance_type = instance_type
        self.suggestions = suggestions


@cache
def table() -> dict[str, InstanceTypeInfo]:
    """The bundled instance-type table (type -> info)."""
    text = resources.files("kubeaws.spec").joinpath("instance_types.json").read_text()
    return {name: InstanceTypeInfo(**info) for name, info in json.loads(text).items()}


def info(instance_type: str) -> InstanceTypeInfo:
    """The table entry of a type; UnknownInstanceType (with close matches) when it is not in the table."""
    known = table()
    if instance_type in known:
        return known[instance_type]
    raise UnknownInstanceType(instance_type, difflib.get_close_matches(instance_type, list(known), n=3, cutoff=0.6))


def spec_of(vcpus: int, memory_mib: int) -> str:
    """`<vcpus>cpu-<memory>gib` (2, 8192 -> `2cpu-8gib`); memory that is not a whole number of GiB is given
    in MiB (2, 15616 -> `2cpu-15616mib`), so the value stays a valid label value and AWS name."""
    if memory_mib % MIB_PER_GIB == 0:
        return f"{vcpus}cpu-{memory_mib // MIB_PER_GIB}gib"
    return f"{vcpus}cpu-{memory_mib}mib"


def instance_spec(instance_type: str) -> str:
    """The instance spec of a type (m5.large -> `2cpu-8gib`, t3.medium -> `2cpu-4gib`); UnknownInstanceType
    for a type outside the table."""
    found = info(instance_type)
    return spec_of(found.vcpus, found.memory_mib)


def known_instance_spec(instance_type: str) -> str | None:
    """The instance spec of a type, None when it is not in the table (no close-match search)."""
    found = table().get(instance_type)
    return spec_of(found.vcpus, found.memory_mib) if found else None


def family(instance_type: str) -> str:
    """`m5.large` -> `m5`."""
    return instance_type.split(".", 1)[0]


def from_describe(answer: Iterable[Mapping[str, Any]]) -> dict[str, InstanceTypeInfo]:
    """Entries from ec2:DescribeInstanceTypes' `InstanceTypes` items (the fields the table is made of). An item
    without one of them is left out (the type is then unknown, as if AWS had not answered for it)."""
    out: dict[str, InstanceTypeInfo] = {}
    for item in answer:
        try:
            out[str(item["InstanceType"])] = InstanceTypeInfo(
                enis=int(item["NetworkInfo"]["MaximumNetworkInterfaces"]),
                ipv4_per_eni=int(item["NetworkInfo"]["Ipv4AddressesPerInterface"]),
                vcpus=int(item["VCpuInfo"]["DefaultVCpus"]), memory_mib=int(item["MemoryInfo"]["SizeInMiB"]))
        except (KeyError, TypeError, ValueError):
            continue
    return out


@dataclass(frozen=True)
class InstanceTypes:
    """The instance-type facts kubeaws works with: the bundled table, plus `extra` entries from
    ec2:DescribeInstanceTypes (which win over the table), plus, for names AWS did not know, the names AWS
    knows in the same family (`family_names`, for did-you-mean). `asked_aws` says whether AWS was asked at all
    (it words the error for an unknown type). Immutable: build another one to add facts."""

    extra: Mapping[str, InstanceTypeInfo] = field(default_factory=dict)
    family_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    asked_aws: bool = False

    def get(self, instance_type: str) -> InstanceTypeInfo | None:
        """The facts of a type, None when neither the table nor AWS knows it."""
        return self.extra.get(instance_type) or table().get(instance_type)

    def __contains__(self, instance_type: object) -> bool:
        return isinstance(instance_type, str) and self.get(instance_type) is not None

    def source(self, instance_type: str) -> str | None:
        """Where the facts of a type come from: "aws", "table", or None when unknown."""
        if instance_type in self.extra:
            return "aws"
        return "table" if instance_type in table() else None

    def suggestions(self, instance_type: str, n: int = 3) -> list[str]:
        """Close matches of an unknown name: among the same family's types AWS listed, else the table and AWS's
        answers (`difflib`, cutoff 0.6)."""
        same_family = list(self.family_names.get(family(instance_type), ()))
        for pool in (same_family, [*table(), *self.extra]):
            found = difflib.get_close_matches(instance_type, sorted(set(pool)), n=n, cutoff=0.6)
            if found:
                return found
        return []

    def info(self, instance_type: str) -> InstanceTypeInfo:
        """The facts of a type; UnknownInstanceType (with close matches) when unknown."""
        found = self.get(instance_type)
        if found is None:
            where = "what AWS knows in this region" if self.asked_aws else "kubeaws' instance-type table"
            raise UnknownInstanceType(instance_type, self.suggestions(instance_type), where)
        return found

    def instance_spec(self, instance_type: str) -> str | None:
        """`<vcpus>cpu-<memory>gib` of a type, None when unknown."""
        found = self.get(instance_type)
        return spec_of(found.vcpus, found.memory_mib) if found else None

    def with_answer(self, answer: Iterable[Mapping[str, Any]], asked: Iterable[str]) -> InstanceTypes:
        """These facts plus a DescribeInstanceTypes answer for the names `asked` (the answer may also list other
        types of their families, kept for did-you-mean)."""
        entries = from_describe(answer)
        asked_set = set(asked)
        families: dict[str, set[str]] = {k: set(v) for k, v in self.family_names.items()}
        for name in entries:
            families.setdefault(family(name), set()).add(name)
        return InstanceTypes(extra={**self.extra, **{k: v for k, v in entries.items() if k in asked_set}},
                             family_names={k: tuple(sorted(v)) for k, v in families.items()}, asked_aws=True)


#: The bundled table alone (no AWS answer).
BUNDLED = InstanceTypes()
