"""The instance-type facts of a spec for the commands that reach AWS: the bundled table plus, for the names the
table lacks, what ec2:DescribeInstanceTypes answers in the spec's region (read-only, paginated). A spec using
only table types makes no call. One call asks for every missing name at once (a filter, so that an unknown name
is simply absent from the answer instead of failing the call); when some stay unknown, a second call lists
their families (`m8g.*`) for did-you-mean.

The answer is kept for the context it was asked through (one run: the CLI's preflight and the plan share it).

Called by the public API (`kubeaws.api`) and the CLI's doctor before the model is built; `spec.resolve` then
refuses the spec if a type is still unknown.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from kubeaws.aws.session import AwsContext
from kubeaws.spec.instance_types import BUNDLED, InstanceTypes, family
from kubeaws.spec.models import ClusterSpec
from kubeaws.spec.resolve import resolve, unresolved

__all__ = ["instance_types", "resolved", "unresolved"]

#: DescribeInstanceTypes accepts at most this many values in one filter.
FILTER_VALUES = 200
#: context -> (names asked -> facts): what AWS answered in this run.
_ASKED: WeakKeyDictionary[AwsContext, dict[tuple[str, ...], InstanceTypes]] = WeakKeyDictionary()


def _describe(ctx: AwsContext, patterns: list[str]) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    for start in range(0, len(patterns), FILTER_VALUES):
        items += ctx.paginate("ec2", "describe_instance_types", "InstanceTypes",
                              Filters=[{"Name": "instance-type", "Values": patterns[start:start + FILTER_VALUES]}])
    return items


def instance_types(spec: ClusterSpec, ctx: AwsContext) -> InstanceTypes:
    """The table, plus AWS's facts for the spec's types the table lacks (BUNDLED when it lacks none)."""
    names = unresolved(spec)
    if not names:
        return BUNDLED
    asked = _ASKED.setdefault(ctx, {})
    if tuple(names) in asked:
        return asked[tuple(names)]
    types = BUNDLED.with_answer(_describe(ctx, names), names)
    missing = [name for name in names if name not in types]
    if missing:
        types = types.with_answer(_describe(ctx, sorted({f"{family(name)}.*" for name in missing})), names)
    asked[tuple(names)] = types
    return types


def resolved(spec: ClusterSpec, ctx: AwsContext) -> ClusterSpec:
    """The spec carrying its instance-type facts from the table and AWS; SpecError when a type is unknown."""
    return resolve(spec, instance_types(spec, ctx))
