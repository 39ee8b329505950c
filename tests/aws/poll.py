"""Bounded waits and bounded commands: every wait of the real-AWS suite has a deadline and says, when it gives
up, what it waited for and what it saw last; every command has a timeout after which its process group (the
one the suite started) is killed.

`wait_for` is pure given its clock and sleep (unit-tested with a fake clock in test_helpers.py).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class NotYet(Exception):
    """Raised by a wait's check: not there yet; the message is the status shown if the wait times out."""


class WaitTimeout(AssertionError):
    """A bounded wait gave up."""


def wait_for(what: str, check: Callable[[], T], timeout: float, interval: float = 10.0, *,
             retry_on: tuple[type[BaseException], ...] = (NotYet,), clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """Call `check` until it returns (its value is returned) or `timeout` seconds have passed. Exceptions of
    `retry_on` mean "not yet" (their text is the last status); any other exception propagates at once."""
    deadline = clock() + timeout
    attempts = 0
    last = "no check has run"
    while True:
        attempts += 1
        try:
            return check()
        except retry_on as exc:
            last = str(exc) or type(exc).__name__
        left = deadline - clock()
        if left <= 0:
            raise WaitTimeout(f"{what}: not done after {timeout:.0f}s ({attempts} checks); last status: {last}")
        sleep(min(interval, left))


@dataclass
class CmdResult:
    args: list[str]
    rc: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def command(self) -> str:
        return shlex.join(self.args)

    def tail(self, lines: int = 25) -> str:
        text = "\n".join(part for part in (self.stderr.strip(), self.stdout.strip()) if part)
        return "\n".join(text.splitlines()[-lines:])


class CommandFailed(Exception):
    """A command exited with a code it should not have."""

    def __init__(self, result: CmdResult, what: str = "") -> None:
        self.result = result
        lead = f"{what}: " if what else ""
        super().__init__(f"{lead}`{result.command}` exited {result.rc} after {result.seconds:.0f}s:\n"
                         f"{result.tail()}")


class CommandTimeout(AssertionError):
    """A command did not finish in time (it was killed)."""


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Stop the process group the suite started for this command (TERM, then KILL after 10 s)."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_command(args: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
                input_text: str | None = None, log: Callable[[str], None] | None = None) -> CmdResult:
    """Run `args` (no shell) with a hard timeout; the whole exchange goes to `log`. An interrupt (Ctrl-C) or a
    timeout kills the command's process group before going on."""
    argv = [str(a) for a in args]
    started = time.monotonic()
    if log:
        log(f"$ {shlex.join(argv)}")
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(env) if env is not None else None, start_new_session=True)
    try:
        out, err = proc.communicate(input_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        if log:
            log(f"  killed after {timeout:.0f}s\n{err[-4000:]}\n{out[-4000:]}")
        raise CommandTimeout(f"`{shlex.join(argv)}` did not finish within {timeout:.0f}s and was stopped; last "
                             f"output:\n{(err or out)[-2000:]}") from None
    except BaseException:
        _kill_group(proc)
        raise
    result = CmdResult(argv, proc.returncode, out, err, time.monotonic() - started)
    if log:
        log(f"  exit {result.rc} in {result.seconds:.1f}s\n{_indent(err)}{_indent(out)}")
    return result


def _indent(text: str, limit: int = 20000) -> str:
    if not text.strip():
        return ""
    body = text if len(text) <= limit else f"... ({len(text) - limit} characters cut)\n{text[-limit:]}"
    return "".join(f"  | {line}\n" for line in body.rstrip("\n").splitlines())
