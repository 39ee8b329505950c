"""What one run of the real-AWS suite costs: on-demand prices of the resources the two clusters hold, times
how long they hold them. The figure quoted in tests/aws/README.md comes from here (test_helpers.py checks that
they agree); `python -m tests.aws.cost` prints the table.

Prices: us-east-1 on-demand list prices (USD) checked when this was written. Other regions cost up to
about 30% more. Free-tier allowances, taxes and the S3/STS/CloudWatch pennies are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class Prices:
    """Hourly (or per-GB) on-demand prices, USD."""

    region: str = "us-east-1"
    instance_hour: tuple[tuple[str, float], ...] = (("m5.large", 0.096), ("t3.micro", 0.0104))
    nat_gateway_hour: float = 0.045
    nat_gateway_gb: float = 0.045
    nlb_hour: float = 0.0225
    nlb_lcu_hour: float = 0.006
    classic_lb_hour: float = 0.025
    ebs_gp3_gb_month: float = 0.08
    public_ipv4_hour: float = 0.005

    def instance(self, instance_type: str) -> float:
        table = dict(self.instance_hour)
        if instance_type not in table:
            raise KeyError(f"no price for {instance_type}: add it to tests/aws/cost.py Prices.instance_hour")
        return table[instance_type]


PRICES = Prices()


@dataclass(frozen=True)
class Scenario:
    """One cluster of a run: what it holds and for how long (hours, from `apply` to the end of `delete`)."""

    name: str
    control_plane: int
    workers: int
    hours: float
    instance_type: str = "m5.large"
    bastion_type: str = "t3.micro"
    #: The node the cluster-autoscaler test adds, and how long it lives.
    autoscaled_worker_hours: float = 0.25
    #: The classic load balancer of the LoadBalancer Service test.
    classic_lb_hours: float = 0.25
    #: Packages and images pulled through the NAT gateway (about 1 GB per node).
    nat_gb: float = 4.0
    root_gb: int = 50
    etcd_gb: int = 20
    bastion_gb: int = 16
    #: Public IPv4 addresses held all along: the NAT gateway's, the bastion's, one per AZ of the API NLB.
    public_ips: int = 5


@dataclass(frozen=True)
class LineItem:
    what: str
    quantity: float
    unit_price: float
    #: None for a one-off charge (per GB): quantity x unit price.
    hours: float | None = None

    @property
    def cost(self) -> float:
        return self.quantity * self.unit_price * (1.0 if self.hours is None else self.hours)


def line_items(s: Scenario, prices: Prices = PRICES) -> list[LineItem]:
    """The billable items of one cluster."""
    nodes = s.control_plane + s.workers
    ebs_gb = s.control_plane * (s.root_gb + s.etcd_gb) + s.workers * s.root_gb + s.bastion_gb
    gb_hour = prices.ebs_gp3_gb_month / HOURS_PER_MONTH
    return [
        LineItem(f"{s.instance_type} nodes ({s.control_plane} control plane + {s.workers} workers)", nodes,
                 prices.instance(s.instance_type), s.hours),
        LineItem(f"{s.instance_type} node added by the cluster-autoscaler", 1, prices.instance(s.instance_type),
                 s.autoscaled_worker_hours),
        LineItem(f"{s.bastion_type} bastion", 1, prices.instance(s.bastion_type), s.hours),
        LineItem("NAT gateway (hour)", 1, prices.nat_gateway_hour, s.hours),
        LineItem("NAT gateway data processed (GB)", s.nat_gb, prices.nat_gateway_gb),
        LineItem("API network load balancer (hour + 1 LCU)", 1, prices.nlb_hour + prices.nlb_lcu_hour, s.hours),
        LineItem("classic load balancer of the Service test", 1, prices.classic_lb_hour, s.classic_lb_hours),
        LineItem(f"EBS gp3 ({ebs_gb} GB: roots, etcd volumes, bastion)", ebs_gb, gb_hour, s.hours),
        LineItem("public IPv4 addresses", s.public_ips, prices.public_ipv4_hour, s.hours),
    ]


def total(items: Iterable[LineItem]) -> float:
    return sum(item.cost for item in items)


#: The expected run: the dev cluster lives about 55 minutes, the three-member one about 75 (it also goes
#: through a control-plane member replacement and has two more nodes to pull images onto).
DEFAULT_SCENARIOS = (
    Scenario("dev (1 control-plane member)", control_plane=1, workers=2, hours=55 / 60, nat_gb=4.0),
    Scenario("ha (3 control-plane members)", control_plane=3, workers=2, hours=75 / 60, nat_gb=6.0),
)


#: The scenario of each cluster of the suite (tests/aws/specs.py variant keys).
SCENARIO_BY_VARIANT = {"dev": DEFAULT_SCENARIOS[0], "ha": DEFAULT_SCENARIOS[1]}


def run_total(scenarios: Sequence[Scenario] = DEFAULT_SCENARIOS, prices: Prices = PRICES) -> float:
    return sum(total(line_items(s, prices)) for s in scenarios)


def hourly(s: Scenario, prices: Prices = PRICES) -> float:
    """What the cluster costs per hour while it runs (e.g. kept with KUBEAWS_AWS_E2E_KEEP=1)."""
    return total(line_items(replace(s, hours=1.0, autoscaled_worker_hours=0.0, classic_lb_hours=0.0, nat_gb=0.0),
                            prices))


def measured(s: Scenario, hours: float, prices: Prices = PRICES) -> float:
    """The cost of a cluster that lived `hours` (measured by the run), the other assumptions unchanged."""
    return total(line_items(replace(s, hours=hours), prices))


def markdown(scenarios: Sequence[Scenario] = DEFAULT_SCENARIOS, prices: Prices = PRICES) -> str:
    """The cost table of tests/aws/README.md."""
    lines = ["| cluster | item | quantity | unit price (USD) | hours | cost (USD) |", "|---|---|---:|---:|---:|---:|"]
    for s in scenarios:
        for item in line_items(s, prices):
            hours = "-" if item.hours is None else f"{item.hours:.2f}"
            lines.append(f"| {s.name} | {item.what} | {item.quantity:g} | {item.unit_price:.6g} | {hours} | "
                         f"{item.cost:.3f} |")
        lines.append(f"| {s.name} | **subtotal** (then {hourly(s, prices):.2f}/hour if kept) | | | | "
                     f"**{total(line_items(s, prices)):.2f}** |")
    lines.append(f"| | **one run** | | | | **{run_total(scenarios, prices):.2f}** |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
