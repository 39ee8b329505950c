"""End to end on a REAL AWS account (tests/aws/README.md: what it creates, cost, permissions, cleanup).

Two clusters, each the subject of the same sequence of tests: one test class per cluster (`TestDev`:
examples/dev.yaml; `TestHa3`: the same with three control-plane members over three AZs), with a class-scoped
fixture `cluster`, so that `-n 2 --dist loadscope` runs the two classes side by side on two workers (pytest
runs the tests of a class in order). A test whose prerequisite failed is skipped with the reason; the cluster
is deleted by the fixture's finalizer whatever happened (unless KUBEAWS_AWS_E2E_KEEP=1), and
`test_delete_leaves_nothing` proves the delete.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.aws import recovery, smoke
from tests.aws.cluster import ClusterRun, E2EContext
from tests.aws.specs import DEV, HA, Variant

pytestmark = pytest.mark.aws


class ClusterSuite:
    """The tests of one cluster; a subclass per cluster sets `variant` (not collected itself: no `Test`)."""

    variant: Variant

    @pytest.fixture(scope="class")
    def cluster(self, request: pytest.FixtureRequest, e2e: E2EContext) -> Iterator[ClusterRun]:
        run = ClusterRun(e2e, request.cls.variant)
        run.announce()
        try:
            yield run
        finally:
            run.finalize()

    def test_plan_and_apply(self, cluster: ClusterRun) -> None:
        """`kubeaws plan` of the new cluster only creates; `kubeaws apply --yes` succeeds."""
        with cluster.step("plan"):
            cluster.plan()
        with cluster.step("apply"):
            cluster.apply()

    def test_cluster_becomes_healthy(self, cluster: ClusterRun) -> None:
        """`kubeaws doctor --live --wait` ends with no error finding; the admin kubeconfig works; every node is
        Ready."""
        cluster.need("apply")
        assert cluster.apply_started is not None
        with cluster.step("doctor-live", since=cluster.apply_started):
            cluster.wait_doctor()
        with cluster.step("kubeconfig"):
            cluster.fetch_kubeconfig()
        with cluster.step("nodes-ready", since=cluster.apply_started):
            nodes = cluster.wait_nodes_ready(cluster.expected_nodes, cluster.t(20))
            control_plane = [n for n in nodes if n.control_plane]
            assert len(control_plane) == cluster.variant.control_plane, (
                f"{len(control_plane)} control-plane nodes, expected {cluster.variant.control_plane}: "
                f"{control_plane}")
            cluster.timings.fact("nodes", [{"name": n.name, "controlPlane": n.control_plane, "zone": n.zone,
                                            "instance": n.instance_id} for n in nodes])
        cluster.passed.add("healthy")

    def test_pod_network_across_nodes_and_azs(self, cluster: ClusterRun) -> None:
        cluster.need("healthy")
        with cluster.step("pod-network"):
            smoke.pod_network(cluster)

    def test_cluster_dns(self, cluster: ClusterRun) -> None:
        cluster.need("healthy")
        with cluster.step("dns"):
            smoke.dns(cluster)

    def test_ebs_volume(self, cluster: ClusterRun) -> None:
        cluster.need("healthy")
        with cluster.step("ebs-volume"):
            smoke.ebs_volume(cluster)

    def test_load_balancer_service(self, cluster: ClusterRun) -> None:
        cluster.need("healthy")
        with cluster.step("load-balancer"):
            smoke.load_balancer(cluster)

    def test_metrics_server(self, cluster: ClusterRun) -> None:
        cluster.need("healthy")
        with cluster.step("metrics"):
            smoke.metrics(cluster)

    def test_cluster_autoscaler_scales_up(self, cluster: ClusterRun) -> None:
        cluster.need("healthy")
        with cluster.step("autoscaler"):
            smoke.autoscaler(cluster)

    def test_delete_leaves_nothing(self, cluster: ClusterRun) -> None:
        """In-cluster cleanup (what the cluster's controllers created), then `kubeaws delete --yes` must succeed
        at the first attempt and leave nothing tagged for the cluster."""
        if cluster.settings.keep:
            pytest.skip("KUBEAWS_AWS_E2E_KEEP=1: the cluster is kept")
        if not cluster.apply_attempted:
            pytest.skip("nothing was applied")
        if "healthy" in cluster.passed:  # else no smoke test ran: nothing was created from inside the cluster
            with cluster.step("k8s-cleanup"):
                cluster.cleanup_kubernetes()
        with cluster.step("delete"):
            cluster.delete()
        with cluster.step("leftover-check"):
            cluster.wait_nothing_left()


class TestDev(ClusterSuite):
    """examples/dev.yaml: one control-plane member."""

    variant = DEV


class TestHa3(ClusterSuite):
    """Three control-plane members over three AZs; also survives losing one of them."""

    variant = HA

    def test_control_plane_member_replacement(self, cluster: ClusterRun) -> None:
        cluster.need("healthy")
        with cluster.step("cp-recovery"):
            recovery.replace_member(cluster)

    # pytest orders a class's tests by their line in this file: the delete test is declared again, after the
    # drill, so that it runs last.
    def test_delete_leaves_nothing(self, cluster: ClusterRun) -> None:
        super().test_delete_leaves_nothing(cluster)
