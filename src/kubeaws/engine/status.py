"""Status: what exists for a cluster, by kind, and how many changes separate it from the spec; and what the
cluster's controllers made, which `kubeaws delete` removes too (its preview is this report).

Called by the public API (kubeaws.api.status). One observation pass serves the inventory and the plan (which
ignores what the controllers made).
"""

from __future__ import annotations

from dataclasses import replace

from kubeaws.aws.session import AwsContext
from kubeaws.engine.observe import observe
from kubeaws.engine.plan import make_plan
from kubeaws.engine.types import StatusReport
from kubeaws.model.graph import Graph


def cluster_status(graph: Graph, ctx: AwsContext, controller_made: bool = True, every_kind: bool = False
                   ) -> StatusReport:
    """The report; `controller_made` False skips looking for what the cluster's controllers made; `every_kind`
    looks for owned resources of every kind, whatever the spec's mode (what delete removes). The report
    carries its observation (`report.observation`), which `destroy` can reuse."""
    obs = observe(ctx, graph, every_kind=every_kind, controller_made_too=controller_made)
    state = make_plan(graph, ctx, obs)
    # Brought resources (the user's VPC, subnets, security groups...) say so in their state.
    brought = [replace(o, state=f"{o.state} (brought)" if o.state else "brought")
               for o in sorted(obs.brought.values(), key=lambda o: (o.kind, o.id))]
    resources = obs.all_owned() + brought
    return StatusReport(cluster=graph.cluster, resources=resources, pending_changes=state.plan.pending,
                        plan_summary=state.plan.summary(), controller_made=obs.all_controller_made(),
                        observation=obs)
