"""Observation: what exists in AWS for a cluster. One `list_owned` per kind (in parallel), `get` for
brought resources, plan-time lookups (public SSM parameters naming AMIs) and, for delete and status only, what
the cluster's controllers made (resources/controller_made.py; a plan never looks for it, so an apply never
deletes it).

Called by engine.plan, engine.destroy and engine.status.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from kubeaws.aws.session import AwsContext
from kubeaws.errors import KubeawsError
from kubeaws.model.graph import Graph
from kubeaws.resources import controller_made, registry
from kubeaws.resources.base import Lookup, Observed, walk

T = TypeVar("T")


class LookupError_(KubeawsError):
    """A plan-time lookup (e.g. an AMI's SSM parameter) found nothing."""


@dataclass
class Observation:
    """Owned resources by kind, brought resources by ID, resolved lookups, and what the cluster's controllers
    made by kind (when asked for)."""

    owned: dict[str, list[Observed]] = field(default_factory=dict)
    brought: dict[str, Observed] = field(default_factory=dict)
    lookups: dict[Lookup, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    controller_made: dict[str, list[Observed]] = field(default_factory=dict)

    def all_owned(self) -> list[Observed]:
        return [o for kind in sorted(self.owned) for o in self.owned[kind]]

    def all_controller_made(self) -> list[Observed]:
        return [o for kind in sorted(self.controller_made) for o in self.controller_made[kind]]

    def vpc_ids(self) -> set[str]:
        """The cluster's VPCs: kubeaws' own and the brought one."""
        return {o.id for o in self.owned.get("Vpc", [])} | {o.id for o in self.brought.values() if o.kind == "Vpc"}


def parallel(tasks: dict[str, Callable[[], T]], workers: int = 8) -> dict[str, T]:
    """Run independent read-only tasks concurrently; re-raise the first error."""
    if not tasks:
        return {}
    with ThreadPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        futures = {name: pool.submit(fn) for name, fn in tasks.items()}
        return {name: fut.result() for name, fut in futures.items()}


def observe(ctx: AwsContext, graph: Graph | None, workers: int = 24, every_kind: bool = False,
            controller_made_too: bool = False) -> Observation:
    """One pass over AWS: owned resources of the kinds the graph's mode can own (of every kind with
    `every_kind`, as delete needs), the graph's brought resources and lookups; with `controller_made_too`
    (delete and status only), what the cluster's controllers made in the cluster's region (and VPCs)."""
    kinds = registry.kinds() if every_kind or graph is None else registry.for_mode(graph.mode)
    made_kinds = controller_made.kinds() if controller_made_too else {}
    tasks: dict[str, Callable[[], Any]] = {f"owned:{name}": partial(kind.list_owned, ctx)
                                           for name, kind in kinds.items()}
    tasks.update({f"controller:{name}": partial(kind.find, ctx) for name, kind in made_kinds.items()})
    brought_ids: dict[str, list[str]] = {}
    lookups: set[Lookup] = set()
    if graph is not None:
        for d in graph:
            if d.brought_id:
                brought_ids.setdefault(d.kind, []).append(d.brought_id)
            walk(d.props, lambda v: lookups.add(v) if isinstance(v, Lookup) else None)
    for kind_name, ids in brought_ids.items():
        tasks[f"brought:{kind_name}"] = partial(kinds[kind_name].get, ctx, ids)
    if lookups:
        tasks["lookups"] = partial(resolve_lookups, ctx, lookups)
    # Build the shared clients up front: built inside the pool, the first one would hold every thread.
    with ctx.sharing():
        services = {kind.service for kind in kinds.values()} | {kind.service for kind in made_kinds.values()}
        for service in sorted(services):
            ctx.client(service)

    def shared(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with ctx.sharing():
                return fn()
        return run

    results = parallel({name: shared(fn) for name, fn in tasks.items()}, workers)
    obs = Observation()
    made: dict[str, list[Observed]] = {}
    for name, value in results.items():
        prefix, _, rest = name.partition(":")
        if prefix == "owned":
            obs.owned[rest] = value
        elif prefix == "controller":
            made[rest] = value
        elif prefix == "brought":
            for o in value:
                obs.brought[o.id] = o
        else:
            obs.lookups, obs.warnings = value
    obs.controller_made = controller_made.select(made, obs.vpc_ids())
    return obs


#: On a local emulator, what stands in for a public AMI parameter it does not have (moto ships Amazon
#: Linux's parameters only, and refuses to create names under /aws/). Nothing boots there anyway.
EMULATOR_STAND_IN = {"arm64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
                     "amd64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"}


def _stand_in(ctx: AwsContext, name: str) -> str | None:
    """The emulator's Amazon Linux AMI for the architecture of parameter `name` (local emulator only)."""
    if ctx.capabilities.public_ami_parameters:
        return None
    param = EMULATOR_STAND_IN["arm64" if "arm64" in name else "amd64"]
    found = ctx.call("ssm", "get_parameters", Names=[param]).get("Parameters", [])
    return str(found[0]["Value"]) if found else None


def resolve_lookups(ctx: AwsContext, lookups: set[Lookup]) -> tuple[dict[Lookup, Any], list[str]]:
    """Resolve SSM parameters in batches of 10 (GetParameters' limit) and the account ID; a missing
    parameter is an error that says how to avoid it. Returns the values and warnings for the plan."""
    out: dict[Lookup, Any] = {}
    warnings: list[str] = []
    ssm = sorted((lk for lk in lookups if lk.source == "ssm"), key=lambda lk: lk.name)
    for i in range(0, len(ssm), 10):
        batch = ssm[i:i + 10]
        try:
            resp = ctx.call("ssm", "get_parameters", Names=[lk.name for lk in batch])
        except ClientError as exc:
            raise LookupError_(f"cannot read public SSM parameters in {ctx.region}: {exc}") from exc
        found = {p["Name"]: p["Value"] for p in resp.get("Parameters", [])}
        for lk in batch:
            if lk.name not in found and (stand_in := _stand_in(ctx, lk.name)):
                warnings.append(f"local emulator: {lk.name} does not exist there; {stand_in} stands in for it "
                                "(instances never boot on the emulator)")
                found[lk.name] = stand_in
            if lk.name not in found:
                raise LookupError_(
                    f"the public SSM parameter {lk.name} does not exist in {ctx.region}, so the AMI cannot be "
                    "chosen automatically; set an explicit AMI ID in the spec (e.g. access.bastion.ami, "
                    "controlPlane.ami or nodeGroups[].ami)")
            out[lk] = found[lk.name]
    if any(lk.source == "sts" for lk in lookups):
        account = ctx.account_id()
        out.update({lk: account for lk in lookups if lk.source == "sts" and lk.name == "account_id"})
    unknown = [lk for lk in lookups if lk not in out]
    if unknown:
        raise LookupError_(f"unsupported lookup source(s): {sorted(str(u) for u in unknown)}")
    return out, warnings
