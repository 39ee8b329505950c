"""The member agent of `kubeaws etcd restore`: bootstrap/templates/etcd-restore.sh.j2 rendered for one cluster.

Pure renderer. Called by kubeaws.etcd_restore, which uploads the text as `etcd-restore/<op>/agent.sh` in the
state bucket for the members' etcd-restore-watch.sh (rendered with the other boot scripts by
bootstrap.userdata) to run; and by the tests that run its functions against a real etcd. Not part of the
user data: a control-plane member's user data is at EC2's 16 KB limit, and rendering it at restore time
means every member runs the agent of the kubeaws version that drives the restore.
"""

from __future__ import annotations

from kubeaws.bootstrap.userdata import _common_context, _env
from kubeaws.spec.models import ClusterSpec


def render_restore_agent(spec: ClusterSpec, bucket: str) -> str:
    """The agent script of a control-plane member (bash), for the state bucket `bucket`."""
    return _env().get_template("etcd-restore.sh.j2").render(_common_context(spec, "control-plane", bucket))
