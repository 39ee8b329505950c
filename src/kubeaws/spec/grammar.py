"""The strict grammars of spec strings that leave kubeaws: into a node's boot scripts and files (mirror URL,
registry prefix, labels...), or into AWS requests (tags, role names, key pair names).

A value outside its grammar is a problem of the spec, whatever the consumer does with it: quoting in the
templates (the `sh` filter of `kubeaws.bootstrap.userdata`) keeps a shell from running a value, but a mirror URL
also lands in an apt source line, a `sed` expression and a containerd TOML file, where only the grammar keeps it
harmless. Every pattern is matched whole (`fullmatch`: `$` alone would let a trailing newline through).

Called by `spec.validate` (`check_strings`); the predicates are shared with its other checks. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from kubeaws.spec.models import ClusterSpec

PathPart = str | int
Add = Callable[[Sequence[PathPart], str, str], None]

#: `http(s)://host[:port][/path]`: a DNS name or IPv4 address, no user info, query or fragment; the path in
#: RFC 3986 unreserved characters, '/', ':' (pkgs.k8s.io's `core:/stable:/`), '+' and %-escapes.
PACKAGE_URL = re.compile(r"https?://[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?"
                         r"(/([A-Za-z0-9._~:+-]|%[0-9A-Fa-f]{2})*)*")
MAX_URL = 512
#: A registry prefix as container image references spell it: `host[:port][/path]`, host a DNS name (dots and
#: dashes), path components in the distribution spec's lowercase grammar (`[a-z0-9]+` joined by `.`, `_`,
#: `__` or dashes).
_COMPONENT = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*"
IMAGE_REPOSITORY = re.compile(rf"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{{1,5}})?(/{_COMPONENT})*")
MAX_IMAGE_REPOSITORY = 255
#: AWS tag keys and values (the set IAM, Auto Scaling and EKS enforce): letters, digits, spaces and `_.:/=+-@`.
TAG_TEXT = re.compile(r"[\w .:/=+\-@]*")
IAM_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}")
IAM_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}")
#: EC2 key pair names: printable ASCII, at most 255 characters.
KEY_PAIR_NAME = re.compile(r"[\x20-\x7e]{1,255}")
KMS_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[A-Za-z0-9/_-]{1,256}")
#: A CIDR block written out: dotted IPv4 or IPv6 hex groups, then a prefix length.
CIDR_TEXT = re.compile(r"(\d{1,3}(\.\d{1,3}){3}|[0-9A-Fa-f:]{2,39}(\d{1,3}(\.\d{1,3}){3})?)/\d{1,3}")


def package_url_ok(value: str) -> bool:
    return len(value) <= MAX_URL and PACKAGE_URL.fullmatch(value) is not None


def image_repository_ok(value: str) -> bool:
    return len(value) <= MAX_IMAGE_REPOSITORY and IMAGE_REPOSITORY.fullmatch(value) is not None


def tag_text_ok(value: str) -> bool:
    return TAG_TEXT.fullmatch(value) is not None


def role_ok(value: str) -> bool:
    """An IAM role name or role ARN."""
    return IAM_ROLE_NAME.fullmatch(value) is not None or IAM_ROLE_ARN.fullmatch(value) is not None


def check_strings(spec: ClusterSpec, add: Add) -> None:
    """Problems of the free-form strings outside the names, labels and IDs that `spec.validate` checks."""
    body = spec.spec
    mirrors = body.mirrors
    if mirrors.packages is not None and not package_url_ok(mirrors.packages):
        add(["spec", "mirrors", "packages"], f"`{mirrors.packages}` is not an http(s) URL kubeaws accepts",
            "use http(s)://host[:port][/path] with letters, digits and . _ ~ : + - % in the path (no spaces, "
            "quotes, query or fragment), e.g. https://mirror.example.cn/k8s")
    if mirrors.image_repository is not None and not image_repository_ok(mirrors.image_repository):
        add(["spec", "mirrors", "imageRepository"], f"`{mirrors.image_repository}` is not a registry prefix",
            "use host[:port][/path] without a scheme, path parts in lowercase letters, digits, '.', '_' and '-', "
            "e.g. registry.example.cn/k8s")
    kms = body.eks.encryption.kms_key_arn
    if kms is not None and not KMS_ARN.fullmatch(kms):
        add(["spec", "eks", "encryption", "kmsKeyArn"], f"`{kms}` is not a KMS key ARN",
            "use arn:aws:kms:<region>:<account>:key/<id>, or leave it out for an AWS-managed key")
    for field, value in (("controlPlaneRole", body.iam.control_plane_role), ("nodeRole", body.iam.node_role)):
        if value is not None and not role_ok(value):
            add(["spec", "iam", field], f"`{value}` is not an IAM role name or role ARN",
                "use the role's name (letters, digits and +=,.@_-, at most 64) or its ARN "
                "arn:aws:iam::<account>:role/<name>")
    key = body.access.ssh_key_name
    if key is not None and not KEY_PAIR_NAME.fullmatch(key):
        add(["spec", "access", "sshKeyName"], f"`{key}` is not an EC2 key pair name",
            "use the key pair's name as EC2 shows it (printable ASCII, at most 255 characters)")


def check_tag_text(path: Sequence[PathPart], key: str, value: str, add: Add) -> None:
    """A user tag's characters (its length and reserved prefixes are checked by `spec.validate`)."""
    if not tag_text_ok(key) or not tag_text_ok(value):
        add(path, "tag keys and values may hold only letters, digits, spaces and _ . : / = + - @",
            "remove other characters (AWS refuses them on IAM roles and Auto Scaling groups)")
