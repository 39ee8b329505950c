"""One cluster of the real-AWS suite, driven the way a user drives it: the `kubeaws` CLI of this venv (`plan`,
`apply --yes`, `doctor --live --wait`, `kubeconfig`, `delete --yes`, all with `--output json` where it helps)
and kubectl with the admin kubeconfig kubeaws hands out. boto3 is used only to observe (and, for the
control-plane drill, to terminate one instance).

Every step is bounded (timeouts scaled by KUBEAWS_AWS_E2E_TIMEOUT_SCALE), logged to
<artifacts>/<cluster>/e2e.log, timed for the report, and on failure leaves diagnostics next to the log
(`kubeaws status`/`doctor --live`, kubectl views, the EC2 console output of every instance, which carries the
bootstrap log). `finalize` deletes the cluster whatever happened, unless KUBEAWS_AWS_E2E_KEEP=1.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.aws import manifests
from tests.aws.kube import NodeInfo, nodes_status, parse_nodes
from tests.aws.leftovers import cleanup_commands, find_leftovers, format_leftovers
from tests.aws.poll import (
    CmdResult,
    CommandFailed,
    CommandTimeout,
    NotYet,
    WaitTimeout,
    run_command,
    wait_for,
)
from tests.aws.report import Timings
from tests.aws.settings import Settings
from tests.aws.specs import Variant, cluster_name, dump_spec, expected_nodes, load_example, node_group, rewrite_spec

#: Transient failures while polling the cluster (the API may be restarting, a kubectl call may time out).
TRANSIENT = (NotYet, CommandFailed, CommandTimeout)
#: `kubeaws doctor --live --wait` of one round (20m; shorter when the 30-minute deadline is nearer).
DOCTOR_WAIT_SECONDS = 20 * 60


def aws_config() -> Any:
    from botocore.config import Config

    return Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 8, "mode": "adaptive"})


@dataclass
class E2EContext:
    """What the whole run shares (made once per pytest process by the `e2e` fixture in conftest.py)."""

    settings: Settings
    run_id: str
    artifacts: Path
    account_id: str
    caller_arn: str
    admin_cidr: str
    azs: list[str]
    kubectl: str
    kubeaws: list[str]
    session: Any = field(repr=False)


class ClusterRun:
    """The life of one cluster: its spec copy, its commands, its steps and its cleanup."""

    def __init__(self, ctx: E2EContext, variant: Variant) -> None:
        from kubeaws.model.state import state_bucket_name

        self.ctx = ctx
        self.variant = variant
        self.settings = ctx.settings
        self.name = cluster_name(variant, ctx.run_id)
        self.region = ctx.settings.region
        self.dir = ctx.artifacts / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.doc = rewrite_spec(load_example(), name=self.name, region=self.region, azs=ctx.azs,
                                admin_cidr=ctx.admin_cidr, control_plane=variant.control_plane, run_id=ctx.run_id,
                                ssh_key=ctx.settings.ssh_key)
        self.spec_path = self.dir / f"{self.name}.yaml"
        self.spec_path.write_text(dump_spec(self.doc, variant))
        self.kubeconfig = self.dir / "kubeconfig"
        self.log_path = self.dir / "e2e.log"
        self.timings = Timings(ctx.artifacts / f"timings-{variant.key}.json", variant.key, self.name)
        self.group, self.group_desired = node_group(self.doc)
        self.expected_nodes = expected_nodes(self.doc)
        self.bucket = state_bucket_name(self.name, ctx.account_id, self.region)
        self.passed: set[str] = set()
        self.apply_started: float | None = None
        self.apply_attempted = False
        self.deleted = False
        self._clients: dict[str, Any] = {}

    # -- plumbing ---------------------------------------------------------------------------------------------
    def t(self, minutes: float) -> float:
        """A timeout of `minutes`, scaled by KUBEAWS_AWS_E2E_TIMEOUT_SCALE, in seconds."""
        return minutes * 60.0 * self.settings.timeout_scale

    def log(self, message: str, *, loud: bool = False) -> None:
        stamp = time.strftime("%H:%M:%S")
        with self.log_path.open("a") as handle:
            handle.write(f"{stamp} {message}\n")
        first = message.splitlines()[0] if message else ""
        if loud or not first.startswith(("$ ", "  ")):
            # Progress on the real terminal even under output capture (tail the log for everything).
            with contextlib.suppress(Exception):
                print(f"[kubeaws-e2e {self.variant.key} {stamp}] {message if loud else first}", file=sys.__stderr__,
                      flush=True)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.ctx.session.client(service, region_name=self.region, config=aws_config())
        return self._clients[service]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"NO_COLOR": "1", "COLUMNS": "200", "TERM": "dumb"})
        for name in ("AWS_ENDPOINT_URL", "KUBEAWS_LOCAL"):
            env.pop(name, None)
        return env

    def kubeaws(self, *args: str, timeout: float, check: bool = True) -> CmdResult:
        result = run_command([*self.ctx.kubeaws, *args], timeout=timeout, env=self.env(), log=self.log)
        if check and result.rc != 0:
            raise CommandFailed(result, f"kubeaws {args[0]}")
        return result

    def kubeaws_json(self, *args: str, timeout: float,
                     ok_codes: Sequence[int] = (0,)) -> tuple[CmdResult, dict[str, Any]]:
        result = self.kubeaws(*args, "--output", "json", timeout=timeout, check=False)
        try:
            doc = json.loads(result.stdout)
        except ValueError:
            raise CommandFailed(result, f"kubeaws {args[0]} printed no JSON document") from None
        if result.rc not in ok_codes:
            raise CommandFailed(result, f"kubeaws {args[0]}")
        return result, doc

    def kubectl(self, *args: str, timeout: float = 120.0, input_text: str | None = None, check: bool = True,
                request_timeout: bool = True) -> CmdResult:
        argv = [self.ctx.kubectl, f"--kubeconfig={self.kubeconfig}"]
        if request_timeout:
            argv.append("--request-timeout=30s")
        result = run_command([*argv, *args], timeout=timeout, env=self.env(), input_text=input_text, log=self.log)
        if check and result.rc != 0:
            raise CommandFailed(result, "kubectl")
        return result

    def kubectl_json(self, *args: str, timeout: float = 120.0) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.kubectl(*args, "-o", "json", timeout=timeout).stdout)
        return out

    def kubectl_apply(self, *docs: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input_text=json.dumps(manifests.as_list(*docs)))

    # -- steps ------------------------------------------------------------------------------------------------
    def need(self, *stages: str) -> None:
        """Skip the calling test when an earlier stage it builds on did not pass."""
        for stage in stages:
            if stage not in self.passed:
                pytest.skip(f"cluster {self.name}: `{stage}` did not pass earlier in this run (see that failure)")

    @contextlib.contextmanager
    def step(self, name: str, *, since: float | None = None) -> Iterator[None]:
        """Time a step (from `since` when given, e.g. the start of apply); failures leave diagnostics."""
        started = time.monotonic()
        self.log(f"step {name}: start")
        try:
            yield
        except BaseException as exc:
            seconds = time.monotonic() - (since if since is not None else started)
            skipped = isinstance(exc, pytest.skip.Exception)
            if not skipped:
                self.timings.record(name, seconds, ok=False, note=f"{type(exc).__name__}: {exc}")
                self.log(f"step {name}: FAILED after {seconds:.0f}s: {type(exc).__name__}: {str(exc)[:2000]}")
                if not isinstance(exc, KeyboardInterrupt):
                    self.diagnose(name)
            raise
        seconds = time.monotonic() - (since if since is not None else started)
        self.timings.record(name, seconds)
        self.passed.add(name)
        self.log(f"step {name}: done in {seconds:.0f}s")

    def announce(self) -> None:
        self.log(f"cluster {self.name} ({self.variant.title}) in {self.region} {self.ctx.azs}; spec {self.spec_path}; "
                 f"log {self.log_path}", loud=True)
        self.log("if this run is interrupted, clean up with:\n  " +
                 "\n  ".join(cleanup_commands(self.name, self.region, self.spec_path)), loud=True)
        self.timings.fact("spec", str(self.spec_path))
        self.timings.fact("azs", self.ctx.azs)

    # -- lifecycle --------------------------------------------------------------------------------------------
    def plan(self) -> dict[str, Any]:
        _, doc = self.kubeaws_json("plan", "-f", str(self.spec_path), timeout=self.t(5))
        (self.dir / "plan.json").write_text(json.dumps(doc, indent=2))
        summary = doc.get("summary") or {}
        self.timings.fact("planSummary", summary)
        unexpected = {k: summary.get(k, 0) for k in ("update", "replace", "delete") if summary.get(k)}
        assert summary.get("create", 0) > 0, f"the plan of a new cluster creates nothing: {summary}"
        assert not unexpected, f"the plan of a brand-new cluster wants to change existing resources: {unexpected}"
        return doc

    def apply(self) -> dict[str, Any]:
        self.apply_attempted = True
        self.apply_started = time.monotonic()
        result, doc = self.kubeaws_json("apply", "-f", str(self.spec_path), "--yes", timeout=self.t(45),
                                        ok_codes=(0, 1))
        (self.dir / "apply.json").write_text(json.dumps(doc, indent=2))
        if "error" in doc:
            raise AssertionError(f"kubeaws apply failed: {doc.get('error')} {doc.get('hint', '')}")
        failed = [r for r in doc.get("resources") or [] if r.get("state") == "failed"]
        self.timings.fact("applyResources", len(doc.get("resources") or []))
        assert result.rc == 0 and doc.get("ok"), (
            f"kubeaws apply did not succeed (exit {result.rc}); failed resources:\n" +
            "\n".join(f"  {r.get('kind')}/{r.get('name')} {r.get('action')}: {r.get('error')}" for r in failed))
        return doc

    def wait_doctor(self) -> dict[str, Any]:
        """`kubeaws doctor --live --wait 20m` until it reports no error AND reached the Kubernetes API: with the
        API unreachable, kubeaws reports a warning (live.api-unreachable) and its --wait stops at once, so the
        suite asks again (and counts how often that happened) until its own deadline."""
        deadline = time.monotonic() + self.t(30)
        runs = early = 0
        last: list[dict[str, Any]] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"kubeaws doctor --live still reports problems after {self.t(30):.0f}s:\n" +
                                  format_findings(last))
            runs += 1
            wait = int(max(60.0, min(DOCTOR_WAIT_SECONDS, left)))
            _, doc = self.kubeaws_json("doctor", "-f", str(self.spec_path), "--live", "--wait", f"{wait}s",
                                       timeout=wait + 600, ok_codes=(0, 1))
            if "findings" not in doc:  # the command itself failed ({"error": ...}): ask again
                doc = {"findings": [{"severity": "error", "check": "kubeaws-doctor",
                                     "message": f"{doc.get('error', doc)} {doc.get('hint', '')}".strip()}]}
            findings = doc.get("findings") or []
            errors = [f for f in findings if f.get("severity") == "error"]
            unreachable = [f for f in findings if f.get("check") == "live.api-unreachable"]
            if not errors and not unreachable:
                (self.dir / "doctor-live.json").write_text(json.dumps(doc, indent=2))
                self.timings.fact("doctorRuns", runs)
                self.timings.fact("doctorWaitEndedWhileApiUnreachable", early)
                self.timings.fact("doctorWarnings", [f"{f.get('check')}: {f.get('message')}" for f in findings
                                                     if f.get("severity") == "warning"])
                return doc
            if not errors:
                early += 1
            last = errors + unreachable
            self.log(f"doctor run {runs}: {len(errors)} error(s), API {'un' if unreachable else ''}reachable; "
                     f"asking again ({left:.0f}s left)\n{format_findings(last)}")
            time.sleep(max(0.0, min(30.0, deadline - time.monotonic())))

    def fetch_kubeconfig(self) -> None:
        self.kubeaws("kubeconfig", "-f", str(self.spec_path), "--output-file", str(self.kubeconfig),
                     "--lifetime-hours", "12", timeout=self.t(3))
        assert self.kubeconfig.exists(), f"kubeaws kubeconfig wrote no {self.kubeconfig}"

    def nodes(self) -> list[NodeInfo]:
        return parse_nodes(self.kubectl_json("get", "nodes"))

    def wait_nodes_ready(self, count: int, timeout: float) -> list[NodeInfo]:
        def check() -> list[NodeInfo]:
            nodes = self.nodes()
            if len(nodes) < count or not all(n.ready for n in nodes):
                raise NotYet(f"{len(nodes)}/{count} nodes registered, {nodes_status(nodes)}")
            return nodes

        return wait_for(f"{count} Ready nodes in {self.name}", check, timeout, 15, retry_on=TRANSIENT)

    # -- AWS views --------------------------------------------------------------------------------------------
    def auto_scaling_group(self, tags: Mapping[str, str]) -> dict[str, Any]:
        """The cluster's Auto Scaling group carrying `tags` (besides kubeaws.io/cluster=<name>), e.g.
        {"kubeaws.io/resource": "AutoScalingGroup/ng-general"} or {"kubeaws.io/control-plane-member": "1"}."""
        wanted = {"kubeaws.io/cluster": self.name, **tags}
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in wanted.items()]
        groups = self.client("autoscaling").describe_auto_scaling_groups(Filters=filters).get("AutoScalingGroups")
        if not groups:
            raise NotYet(f"no Auto Scaling group tagged {wanted}")
        if len(groups) > 1:
            raise AssertionError(f"{len(groups)} Auto Scaling groups tagged {wanted}: "
                                 f"{[g['AutoScalingGroupName'] for g in groups]}")
        group: dict[str, Any] = groups[0]
        return group

    def instances(self) -> list[dict[str, Any]]:
        """The cluster's pending/running instances (kubeaws' and its Auto Scaling groups')."""
        paginator = self.client("ec2").get_paginator("describe_instances")
        filters = [{"Name": "tag-key", "Values": [f"kubernetes.io/cluster/{self.name}"]},
                   {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
        return [i for page in paginator.paginate(Filters=filters) for r in page["Reservations"] for i in r["Instances"]]

    # -- cleanup ----------------------------------------------------------------------------------------------
    def cleanup_kubernetes(self) -> None:
        """Delete what the smoke workload made the cluster create in AWS (the LoadBalancer Service's load
        balancer and security group, the EBS volume of the claim): `kubeaws delete` only deletes what kubeaws
        created, and those would leak (and keep the VPC from being deleted)."""
        if not self.kubeconfig.exists():
            self.log("no kubeconfig: nothing to clean up inside the cluster")
            return
        probe = self.kubectl("get", "--raw", "/readyz", timeout=90, check=False)
        if probe.rc != 0:
            # A dead API cannot delete anything: go on with `kubeaws delete`; the leftover check names the rest.
            raise AssertionError(f"the Kubernetes API does not answer, the in-cluster cleanup cannot run: "
                                 f"{probe.tail(3)}")
        self.kubectl("delete", "namespace", manifests.NAMESPACE, "--ignore-not-found", "--wait=true",
                     f"--timeout={int(self.t(15))}s", timeout=self.t(16), request_timeout=False)

        def volumes_gone() -> None:
            left = [pv["metadata"]["name"] for pv in self.kubectl_json("get", "pv").get("items") or []
                    if ((pv.get("spec") or {}).get("claimRef") or {}).get("namespace") == manifests.NAMESPACE]
            if left:
                raise NotYet(f"persistent volumes of {manifests.NAMESPACE} still there: {left}")

        wait_for("the test namespace's persistent volumes to be deleted", volumes_gone, self.t(5), 15,
                 retry_on=TRANSIENT)

    def delete(self) -> dict[str, Any]:
        result, doc = self.kubeaws_json("delete", "-f", str(self.spec_path), "--yes", timeout=self.t(45),
                                        ok_codes=(0, 1))
        (self.dir / "delete.json").write_text(json.dumps(doc, indent=2))
        if result.rc == 0 and doc.get("ok", False):
            self.deleted = True
            if self.apply_started is not None:
                self.timings.fact("lifetimeSeconds", round(time.monotonic() - self.apply_started, 1))
            return doc
        failed = [r for r in doc.get("resources") or [] if r.get("state") == "failed"]
        raise AssertionError(
            f"kubeaws delete did not succeed (exit {result.rc}): {doc.get('error', '')}\n" +
            "\n".join(f"  {r.get('kind')}/{r.get('name')}: {r.get('error')}" for r in failed))

    def leftovers_report(self) -> str:
        found, unchecked = find_leftovers(self.ctx.session, self.region, self.name, self.bucket, aws_config())
        return format_leftovers(self.name, self.region, self.spec_path, found, unchecked)

    def wait_nothing_left(self) -> None:
        def check() -> None:
            report = self.leftovers_report()
            if report:
                raise NotYet(report)

        wait_for(f"every resource of {self.name} to be gone", check, self.t(10), 30)

    def finalize(self) -> None:
        """Always delete (whatever happened before), unless KUBEAWS_AWS_E2E_KEEP=1; a failed delete ends with the
        exact commands to finish by hand."""
        if self.deleted or not self.apply_attempted:
            return
        commands = "\n  ".join(cleanup_commands(self.name, self.region, self.spec_path))
        if self.settings.keep:
            self.log(f"KUBEAWS_AWS_E2E_KEEP=1: cluster {self.name} is KEPT (it costs money by the hour). Delete "
                     f"it with:\n  {commands}", loud=True)
            return
        self.log(f"deleting cluster {self.name} (a second Ctrl-C stops this; then clean up by hand)", loud=True)
        try:
            try:
                self.cleanup_kubernetes()
            except Exception as exc:
                self.log(f"in-cluster cleanup failed (going on with kubeaws delete): {exc}")
            started = time.monotonic()
            for attempt in (1, 2):
                try:
                    self.delete()
                    break
                except Exception as exc:
                    self.log(f"kubeaws delete attempt {attempt} failed: {exc}")
                    if attempt == 1:
                        time.sleep(60)
            self.timings.record("delete", time.monotonic() - started, ok=self.deleted, note="by the fixture finalizer")
        except KeyboardInterrupt:
            self.shout_cleanup(commands, "interrupted")
            raise
        if not self.deleted:
            self.shout_cleanup(commands, "kubeaws delete failed")
        else:
            self.log(f"cluster {self.name} deleted", loud=True)

    def shout_cleanup(self, commands: str, why: str) -> None:
        text = (f"!!! {why}: cluster {self.name} may still exist in {self.region} and cost money. Clean up with:\n"
                f"  {commands}")
        self.log(text, loud=True)
        with contextlib.suppress(OSError):
            (self.ctx.artifacts / f"CLEANUP-REQUIRED-{self.name}.txt").write_text(text + "\n")

    # -- diagnostics ------------------------------------------------------------------------------------------
    def diagnose(self, label: str) -> None:
        """Save what helps understand a failure; never raises, every part bounded."""
        out = self.dir / f"diagnostics-{label}"
        out.mkdir(parents=True, exist_ok=True)

        def save(name: str, fn: Callable[[], str]) -> None:
            try:
                (out / name).write_text(fn())
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                (out / name).write_text(f"could not collect: {type(exc).__name__}: {exc}\n")

        spec = str(self.spec_path)
        save("kubeaws-status.json", lambda: self.kubeaws("status", "-f", spec, "--output", "json",
                                                         timeout=300, check=False).stdout)
        save("kubeaws-doctor-live.json", lambda: self.kubeaws("doctor", "-f", spec, "--live", "--output", "json",
                                                              timeout=300, check=False).stdout)
        def kubectl_text(*args: str) -> str:
            result = self.kubectl(*args, timeout=90, check=False)
            return result.stdout + result.stderr

        if self.kubeconfig.exists():
            for name, args in (("nodes.txt", ["get", "nodes", "-o", "wide", "--show-labels"]),
                               ("pods.txt", ["get", "pods", "-A", "-o", "wide"]),
                               ("events.txt", ["get", "events", "-A", "--sort-by=.lastTimestamp"]),
                               ("describe-nodes.txt", ["describe", "nodes"]),
                               ("e2e-objects.txt", ["-n", manifests.NAMESPACE, "describe", "all,pvc"])):
                save(name, functools.partial(kubectl_text, *args))
        def console(instance_id: str) -> str:
            # The bootstrap scripts log to the serial console too: the boot log without SSH.
            answer = self.client("ec2").get_console_output(InstanceId=instance_id, Latest=True)
            return str(answer.get("Output") or "(no console output yet)")

        try:
            for instance in self.instances():
                iid = str(instance["InstanceId"])
                role = next((t["Value"] for t in instance.get("Tags") or [] if t["Key"] == "kubeaws.io/role"), "")
                save(f"console-{role or 'instance'}-{iid}.txt", functools.partial(console, iid))
        except Exception as exc:
            (out / "console-error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
        self.log(f"diagnostics of `{label}` saved in {out}", loud=True)


def format_findings(findings: Sequence[dict[str, Any]]) -> str:
    lines = []
    for f in findings:
        where = f" ({f.get('resource')})" if f.get("resource") else ""
        lines.append(f"  {f.get('severity')} {f.get('check')}: {f.get('message')}{where}")
        if f.get("hint"):
            lines.append(f"      fix: {f.get('hint')}")
    return "\n".join(lines) or "  (no findings)"
