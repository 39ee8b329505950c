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
rerun to extend it. Types outside the table raise `UnknownInstanceType` (`kubeaws doctor` can check them live).

Lives in the spec layer because spec validation (`{spec}` in name patterns) and the node bootstrap (the label
kubelet registers with) need it, and neither may import the model. Pure: reads only the bundled file.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

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
    """An instance type missing from the bundled table. `suggestions` holds close matches."""

    def __init__(self, instance_type: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"instance type {instance_type!r} is not in kubeaws' instance-type table{hint}")
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
