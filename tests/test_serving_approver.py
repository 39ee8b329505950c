"""The kubelet serving-certificate approver (src/kubeaws/bootstrap/serving_approver.py) against its contract: it
approves a node's CSR only for that node's own EC2 names and addresses, and refuses every other request (another
node's name or address, a foreign IP, a subject or usages that are not the requesting node's server, SAN kinds a
kubelet never asks for). Real PKCS#10 requests (cryptography) go through the real DER reader; the shipped file
runs under the system's python3 (no kubeaws, no venv) against stand-in `kubectl` and `aws` commands that record
what it does."""

from __future__ import annotations

import ast
import base64
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubeaws.bootstrap import serving_approver as approver
from kubeaws.bootstrap.userdata import (
    APPROVER_KEY,
    APPROVER_PATH,
    APPROVER_UNIT,
    approver_source,
    artifacts,
    bucket_objects,
)
from tests.helpers import make_spec

NODE = "ip-10-0-1-23.ec2.internal"
OTHER = "ip-10-0-2-45.ec2.internal"
INSTANCE = {
    "InstanceId": "i-0aaa", "PrivateDnsName": NODE, "PrivateIpAddress": "10.0.1.23",
    "PublicDnsName": "ec2-54-1-2-3.compute-1.amazonaws.com", "PublicIpAddress": "54.1.2.3",
    "NetworkInterfaces": [
        {"PrivateIpAddresses": [{"PrivateIpAddress": "10.0.1.23", "Association": {"PublicIp": "54.1.2.3"}}],
         "Ipv6Addresses": [{"Ipv6Address": "2600:1f18::23"}], "Association": {"PublicIp": "54.1.2.3"}},
        {"PrivateIpAddresses": [{"PrivateIpAddress": "10.0.1.200"}]},  # the API interface of member 0
    ],
}
OTHER_INSTANCE = {"InstanceId": "i-0bbb", "PrivateDnsName": OTHER, "PrivateIpAddress": "10.0.2.45",
                  "NetworkInterfaces": [{"PrivateIpAddresses": [{"PrivateIpAddress": "10.0.2.45"}]}]}
KEY = ec.generate_private_key(ec.SECP256R1())


def request_pem(cn: str = f"system:node:{NODE}", orgs: tuple[str, ...] = ("system:nodes",),
                dns: tuple[str, ...] = (NODE,), ips: tuple[str, ...] = ("10.0.1.23",),
                extra: tuple[x509.GeneralName, ...] = (), extra_subject: tuple[x509.NameAttribute, ...] = ()) -> str:
    names = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    names += [x509.NameAttribute(NameOID.COMMON_NAME, cn), *extra_subject]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
    sans = [*(x509.DNSName(d) for d in dns), *(x509.IPAddress(ipaddress.ip_address(i)) for i in ips), *extra]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def csr(name: str = "csr-own", user: str = f"system:node:{NODE}", groups: tuple[str, ...] = ("system:nodes",
        "system:authenticated"), usages: tuple[str, ...] = ("digital signature", "server auth"),
        signer: str = approver.SIGNER, pem: str | None = None, **request: Any) -> dict[str, Any]:
    text = pem if pem is not None else request_pem(**request)
    return {"metadata": {"name": name}, "spec": {
        "username": user, "groups": list(groups), "usages": list(usages), "signerName": signer,
        "request": base64.b64encode(text.encode()).decode()}, "status": {}}


# --- the decision ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("request_kw", [
    {},
    # everything cloud-provider-aws reports for the node: public DNS and IP, IPv6, the second interface's address
    {"dns": (NODE, "ec2-54-1-2-3.compute-1.amazonaws.com"), "ips": ("10.0.1.23", "54.1.2.3", "2600:1f18::23",
                                                                   "10.0.1.200")},
    {"dns": (NODE.upper(),), "ips": ()},
    {"dns": (), "ips": ("10.0.1.23",)},
], ids=["name-and-ip", "cloud-provider-addresses", "dns-case", "ip-only"])
def test_a_node_gets_its_own_names_and_addresses(request_kw: dict[str, Any]) -> None:
    assert approver.decide(csr(**request_kw), [INSTANCE, OTHER_INSTANCE]) == "approve"


@pytest.mark.parametrize(("obj", "reason"), [
    (csr(dns=(NODE, OTHER)), f"'{OTHER}' is not of instance i-0aaa"),
    (csr(dns=("kubernetes.default.svc",)), "'kubernetes.default.svc' is not of instance"),
    (csr(ips=("10.0.1.23", "10.0.2.45")), "'10.0.2.45' is not of instance"),  # another node's address
    (csr(ips=("192.0.2.10",)), "'192.0.2.10' is not of instance"),  # a foreign address
    (csr(cn=f"system:node:{OTHER}"), "is not O=system:nodes, CN=system:node:" + NODE),
    (csr(orgs=("system:nodes", "system:masters")), "is not O=system:nodes"),
    (csr(orgs=()), "is not O=system:nodes"),
    (csr(extra_subject=(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "x"),)), "other than O and CN"),
    (csr(user=f"system:node:{OTHER}"), f"is not O=system:nodes, CN=system:node:{OTHER}"),
    (csr(user="system:serviceaccount:default:x"), "is not a node"),
    (csr(user="system:node:"), "is not a node"),
    (csr(user="system:node:a,b"), "is not a node"),  # a comma would split the EC2 filter value
    (csr(groups=("system:authenticated",)), "not in group system:nodes"),
    (csr(usages=("digital signature", "server auth", "client auth")), "not a server's"),
    (csr(usages=("digital signature",)), "not a server's"),
    (csr(signer="kubernetes.io/kube-apiserver-client-kubelet"), "is not kubernetes.io/kubelet-serving"),
    (csr(extra=(x509.RFC822Name("a@example.com"),)), "subject alternative name of type 0x81"),
    (csr(extra=(x509.UniformResourceIdentifier("spiffe://x/y"),)), "subject alternative name of type 0x86"),
    (csr(dns=(), ips=()), "names no DNS name or IP address"),
    (csr(pem="-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"), "unreadable"),
    (csr(pem="not a request"), "unreadable request"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_everything_else_is_refused(obj: dict[str, Any], reason: str) -> None:
    with pytest.raises(approver.Refused) as refused:
        approver.decide(obj, [INSTANCE, OTHER_INSTANCE])
    assert reason in str(refused.value)


@pytest.mark.parametrize("instances", [[], [OTHER_INSTANCE], [INSTANCE, dict(INSTANCE, InstanceId="i-0ccc")]],
                         ids=["none", "another", "two"])
def test_the_node_must_be_exactly_one_instance_of_the_cluster(instances: list[dict[str, Any]]) -> None:
    with pytest.raises(approver.Refused, match=f"running instances of this cluster are named {NODE}"):
        approver.decide(csr(), instances)


def test_a_line_break_in_a_requested_name_is_not_logged_raw() -> None:
    with pytest.raises(approver.Refused) as refused:
        approver.decide(csr(dns=(NODE, "x\napproved: csr-9")), [INSTANCE])
    assert "\n" not in str(refused.value)


# --- the shipped program, run as the node runs it ---------------------------------------------------------------

def test_the_shipped_file_needs_only_python_3_10_and_the_standard_library() -> None:
    source = approver_source()
    tree = ast.parse(source, feature_version=(3, 10))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported
    assert "kubeaws" not in imported


FAKE_KUBECTL = '''#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
with open(os.environ["CALLS"], "a") as fh:
    fh.write("kubectl " + " ".join(args) + "\\n")
if args[2:4] == ["get", "csr"]:
    assert args[4:6] == ["--field-selector", "spec.signerName=kubernetes.io/kubelet-serving"], args
    print(open(os.environ["CSRS"]).read())
elif args[2] != "certificate":
    sys.exit("unexpected kubectl call")
'''
FAKE_AWS = '''#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
with open(os.environ["CALLS"], "a") as fh:
    fh.write("aws " + " ".join(args) + "\\n")
filters = dict(f[len("Name="):].split(",Values=", 1) for f in args if f.startswith("Name="))
name = filters["private-dns-name"]
if name in os.environ.get("BROKEN", ""):
    sys.exit("An error occurred (RequestLimitExceeded) when calling the DescribeInstances operation")
cluster = os.environ["CLUSTER"]
found = [i for i in json.load(open(os.environ["INSTANCES"])) if i["PrivateDnsName"] == name
         and filters.get("tag:kubernetes.io/cluster/" + cluster) == "owned"
         and filters.get("instance-state-name") == "pending,running"]
print(json.dumps(found))
'''


def test_the_program_approves_denies_and_waits_as_the_contract_says(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("kubectl", FAKE_KUBECTL), ("aws", FAKE_AWS)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    third = "ip-10-0-3-7.ec2.internal"
    approved_before = dict(csr("csr-old"), status={"conditions": [{"type": "Approved"}]})
    items = [csr("csr-own"), csr("csr-forged", dns=(OTHER,), ips=("10.0.2.45",)), approved_before,
             csr("csr-impersonating", user=f"system:node:{OTHER}", cn=f"system:node:{OTHER}", ips=("10.0.1.23",)),
             csr("csr-ec2-down", user=f"system:node:{third}", cn=f"system:node:{third}", dns=(third,), ips=())]
    (tmp_path / "csrs.json").write_text(json.dumps({"items": items}))
    (tmp_path / "instances.json").write_text(json.dumps([INSTANCE, OTHER_INSTANCE]))
    (tmp_path / "approver.py").write_text(approver_source())
    calls = tmp_path / "calls.log"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls), "CSRS": str(tmp_path / "csrs.json"),
           "INSTANCES": str(tmp_path / "instances.json"), "CLUSTER": "prod", "BROKEN": third}
    python3 = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    out = subprocess.run([python3, str(tmp_path / "approver.py"), "--cluster", "prod", "--region", "eu-west-1",
                          "--kubeconfig", "/etc/kubernetes/admin.conf", "--passes", "1"],
                         env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    log = calls.read_text().splitlines()
    decisions = sorted(c.split()[-2:] for c in log if " certificate " in c)
    assert decisions == [["approve", "csr-own"], ["deny", "csr-forged"], ["deny", "csr-impersonating"]]
    assert all(c.startswith("kubectl --kubeconfig /etc/kubernetes/admin.conf ") for c in log if c.startswith("kubectl"))
    lookups = [c for c in log if c.startswith("aws ")]
    assert all("--region eu-west-1" in c and "Name=tag:kubernetes.io/cluster/prod,Values=owned" in c for c in lookups)
    assert "csr-ec2-down: left pending, EC2 could not be read" in out.stdout
    assert "csr-forged: denied: 'ip-10-0-2-45.ec2.internal', '10.0.2.45' are not of instance i-0aaa" in out.stdout
    assert "csr-old" not in out.stdout


def test_every_member_installs_and_runs_it_from_the_state_bucket() -> None:
    spec = make_spec(controlPlane={"count": 3})
    assert bucket_objects(spec)[APPROVER_KEY] == approver_source() == Path(approver.__file__).read_text()
    files = artifacts(spec, "bucket")
    assert files["node/kubelet-serving-approver.py"] == approver_source()
    script = files["scripts/bootstrap-control-plane.sh"]
    main = script[script.index("main() {"):]
    # on every member (not only member 0), right after the control plane is up and before the addons
    assert main.index("step publish") < main.index("step serving-approver install_approver") < \
        main.index('if [[ "$MEMBER" == "0" ]]; then\n    step addons')
    body = script[script.index("install_approver() {"):script.index("kubectl_apply() {")]
    assert f"s3_get {APPROVER_KEY} " in body and f'"$ROOT"{APPROVER_PATH}' in body
    assert f"systemctl enable --now {APPROVER_UNIT}" in body
    unit = files["user-data/control-plane.yaml"]
    assert f"ExecStart=/usr/bin/python3 {APPROVER_PATH} --cluster dev --region us-east-1 --kubeconfig " \
           "/etc/kubernetes/admin.conf" in unit
