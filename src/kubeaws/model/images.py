"""Machine images: the public SSM parameter that names the current AMI of each supported OS and CPU
architecture, and the architecture of an instance type.

Called by model builders (bastion, control plane, node groups). Pure.
"""

from __future__ import annotations

import re

from kubeaws.resources.base import Lookup

_ARM_FAMILY = re.compile(r"^[a-z]+\d+[a-z]*g[a-z]*$")

_UBUNTU = "/aws/service/canonical/ubuntu/server/{release}/stable/current/{arch}/hvm/{disk}/ami-id"
_AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"

SSM_PARAMETERS = {
    ("al2023", "x86_64"): _AL2023.format(arch="x86_64"),
    ("al2023", "arm64"): _AL2023.format(arch="arm64"),
    ("ubuntu-22.04", "x86_64"): _UBUNTU.format(release="22.04", arch="amd64", disk="ebs-gp2"),
    ("ubuntu-22.04", "arm64"): _UBUNTU.format(release="22.04", arch="arm64", disk="ebs-gp2"),
    ("ubuntu-24.04", "x86_64"): _UBUNTU.format(release="24.04", arch="amd64", disk="ebs-gp3"),
    ("ubuntu-24.04", "arm64"): _UBUNTU.format(release="24.04", arch="arm64", disk="ebs-gp3"),
}


def architecture(instance_type: str) -> str:
    """"arm64" for Graviton families (t4g, m6g, c7gn, r8g...), else "x86_64"."""
    family = instance_type.split(".", 1)[0]
    return "arm64" if _ARM_FAMILY.match(family) else "x86_64"


def image(os_name: str, instance_type: str, explicit_ami: str | None) -> str | Lookup:
    """The explicit AMI when given, else a Lookup of the OS's public SSM parameter (resolved at plan time)."""
    if explicit_ami:
        return explicit_ami
    return Lookup("ssm", SSM_PARAMETERS[(os_name, architecture(instance_type))])
