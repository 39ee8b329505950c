"""The mutation check of docs/testing.md: deliberate bugs, each applied to a copy of the tree, and the tests
that must catch them run against the copy. Prints a table (mutation, the failing tests, caught?) and exits
non-zero if a bug survives or a mutation no longer applies to the code.

    python -m tests.mutation_check            # every mutation
    python -m tests.mutation_check ca-pin     # some, by name

Not part of the test suite (it runs the suite's tests many times); run it when the code a mutation touches
changes, and update docs/testing.md with its table.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONTRACT = ("tests/test_kinds_contract.py", "tests/test_registry.py", "tests/test_faults.py")


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation("ca-pin", "drop the CA-hash pin from the join discovery", "src/kubeaws/bootstrap/kubeadm.py",
             ',\n                               "caCertHashes": ["@@CA_HASH@@"]}}', "}}",
             ("tests/test_kubeadm_contract.py", "tests/test_bootstrap.py")),
    Mutation("ca-placeholder", "the CA-hash placeholder not substituted at boot",
             "src/kubeaws/bootstrap/templates/lib.sh.j2", '-e "s#@@CA_HASH@@#${CA_HASH}#g" ', "",
             ("tests/test_bootstrap.py",)),
    Mutation("imdsv2", "IMDSv2 optional on the launch templates", "src/kubeaws/model/control_plane.py",
             '{"http_tokens": "required"', '{"http_tokens": "optional"',
             ("tests/test_model_compute.py", "tests/test_kubeadm.py")),
    Mutation("imds-token", "an IMDS call without the token header", "src/kubeaws/bootstrap/templates/lib.sh.j2",
             'curl -fsS -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" ', "curl -fsS ",
             ("tests/test_bootstrap_sandbox.py::test_a_node_that_cannot_join_says_why_and_is_replaced",)),
    Mutation("flannel-vxlan", "flannel's udp 8472 flow removed", "src/kubeaws/model/flows.py",
             'return [("udp", 8472, 8472, "flannel VXLAN")]', "return []",
             ("tests/test_doctor_brought.py", "tests/test_model.py", "tests/test_doctor.py")),
    Mutation("volume-az", "the etcd volume lookup ignores the AZ",
             "src/kubeaws/bootstrap/templates/control-plane.sh.j2", '"Name=availability-zone,Values=$AZ" ', "",
             ("tests/test_bootstrap.py",)),
    Mutation("max-pods", "max pods off by one", "src/kubeaws/model/maxpods.py",
             "return usable * (ipv4_per_eni - 1) + 2", "return usable * (ipv4_per_eni - 1) + 3",
             ("tests/test_maxpods.py",)),
    Mutation("kubeadm-flag", "a wrong kubeadm flag in the boot script",
             "src/kubeaws/bootstrap/templates/control-plane.sh.j2", "--skip-token-print", "--skip-token-prnt",
             ("tests/test_kubeadm_contract.py",)),
    Mutation("etcd-dir", "etcd's data directory is the volume's root (lost+found in it)",
             "src/kubeaws/bootstrap/kubeadm.py", 'ETCD_DATA_DIR = f"{ETCD_MOUNT}/data"', "ETCD_DATA_DIR = ETCD_MOUNT",
             ("tests/test_kubeadm_contract.py", "tests/test_bootstrap.py")),
    Mutation("detach-eni", "DetachNetworkInterface left out of the control-plane policy", "src/kubeaws/model/iam.py",
             '"ec2:AttachNetworkInterface",\n                    "ec2:DetachNetworkInterface"],',
             '"ec2:AttachNetworkInterface"],', ("tests/test_bootstrap_iam.py",)),
    Mutation("peer-tag", "replaced members look for peers by a tag instances do not carry",
             "src/kubeaws/bootstrap/templates/etcd-members.sh.j2",
             '"Name=tag:kubernetes.io/cluster/$CLUSTER,Values=owned"', '"Name=tag:kubeaws.io/cluster,Values=$CLUSTER"',
             ("tests/test_bootstrap.py",)),
    Mutation("subnet-retry", "subnet delete without the DependencyViolation retry", "src/kubeaws/resources/subnet.py",
             'delete_when_free(ctx, lambda: ctx.call("ec2", "delete_subnet", SubnetId=actual.id), [NOT_FOUND],\n'
             '                         f"subnet {actual.id} without network interfaces")',
             'ctx.call("ec2", "delete_subnet", SubnetId=actual.id)', CONTRACT),
    Mutation("subnet-replace", "a subnet CIDR change planned as an update instead of a replace",
             "src/kubeaws/resources/subnet.py", 'immutable = frozenset({"vpc_id", "cidr_block", "availability_zone"})',
             'immutable = frozenset({"vpc_id", "availability_zone"})', CONTRACT),
    Mutation("tag-on-create", "the VPC's tags sent by CreateTags after the create instead of in it",
             "src/kubeaws/resources/vpc.py",
             'CidrBlock=desired.props["cidr_block"],\n'
             '                       TagSpecifications=self.ec2_tag_spec("vpc", desired))["Vpc"]',
             'CidrBlock=desired.props["cidr_block"])["Vpc"]\n'
             '        ctx.call("ec2", "create_tags", Resources=[vpc["VpcId"]],\n'
             '                 Tags=self.ec2_tag_spec("vpc", desired)[0]["Tags"])', CONTRACT),
    Mutation("service-lb-order", "the cluster's Service load balancers deleted after the groups they use",
             "src/kubeaws/resources/controller_made.py", 'service = "elb"\n    rank = 44',
             'service = "elb"\n    rank = 25', ("tests/test_controller_made.py",)),
    Mutation("service-sg-refs", "the rules naming a Service's group as source not revoked before it goes",
             "src/kubeaws/resources/controller_made.py", "        revoke_references(ctx, actual.id)\n", "",
             ("tests/test_controller_made.py",)),
    Mutation("controller-rules", "apply revokes the rules the cluster's controllers added to kubeaws' groups",
             "src/kubeaws/resources/security_group_rules.py",
             "if is_controller_made(tag_dict(g.get(\"Tags\")), ctx.cluster)}", "if False}",
             ("tests/test_controller_made.py",)),
    Mutation("controller-shared", "a `shared` resource counted as made by the cluster's controllers",
             "src/kubeaws/aws/tags.py", 'if tags.get(ours) != "owned" or', "if ours not in tags or",
             ("tests/test_controller_made.py",)),
    Mutation("controller-vpc", "controllers' resources of a same-named cluster in another VPC counted",
             "src/kubeaws/resources/controller_made.py", "not known[name].in_vpc or", "True or",
             ("tests/test_controller_made.py",)),
    Mutation("csi-volume-wait", "a CSI volume deleted without waiting for it to be detached",
             "src/kubeaws/resources/controller_volumes.py", '        registry_kind("Volume").delete(ctx, actual)',
             '        ctx.call("ec2", "delete_volume", VolumeId=actual.id)', ("tests/test_controller_made.py",)),
)


def run(mutation: Mutation) -> tuple[str, list[str]]:
    """('caught' | 'SURVIVED' | 'does not apply', failing test ids)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "tree"
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.split()
        for name in files:
            src = REPO / name
            if src.is_file():
                (copy / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, copy / name)
        target = copy / mutation.path
        text = target.read_text() if target.exists() else ""
        if mutation.old not in text:
            return "does not apply", []
        target.write_text(text.replace(mutation.old, mutation.new, 1))
        env = {**os.environ, "PYTHONPATH": f"{copy / 'src'}:{copy}", "KUBEAWS_CACHE_DIR": "off"}
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-n", "2",
                                 *mutation.tests], cwd=copy, env=env, capture_output=True, text=True)
        failed = sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", result.stdout, re.M)))
        return ("caught" if result.returncode != 0 and failed else "SURVIVED"), failed


def main(names: list[str]) -> int:
    chosen = [m for m in MUTATIONS if not names or m.name in names]
    print("| mutation | bug | caught by |")
    print("|---|---|---|")
    bad = 0
    for mutation in chosen:
        verdict, failed = run(mutation)
        bad += verdict != "caught"
        tests = ", ".join(f"`{t}`" for t in failed[:3]) or "-"
        print(f"| {mutation.name} | {mutation.what} | {verdict}: {tests} |", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
