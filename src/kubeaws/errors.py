"""Exceptions that kubeaws raises to its callers.

Used by every layer; the CLI maps them to exit codes (SpecError -> 2, the others -> 1) and prints them
without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class KubeawsError(Exception):
    """Base of every error kubeaws raises on purpose."""


@dataclass
class FieldProblem:
    """One problem in a spec: where (dotted field path), what is wrong, and how to fix it."""

    path: str
    message: str
    hint: str = ""
    line: int | None = None

    def render(self, source: str = "") -> str:
        where = f"{source}:{self.line}: " if source and self.line else (f"{source}: " if source else "")
        text = f"{where}{self.path or '<document>'}: {self.message}"
        if self.hint:
            text += f"\n    fix: {self.hint}"
        return text


@dataclass
class SpecError(KubeawsError):
    """The spec file cannot be used. Carries every problem found, not just the first."""

    problems: list[FieldProblem] = field(default_factory=list)
    source: str = ""

    def __str__(self) -> str:
        head = f"{self.source or 'spec'}: {len(self.problems)} problem(s)"
        return "\n".join([head, *(p.render(self.source) for p in self.problems)])


class OwnershipError(KubeawsError):
    """A resource kubeaws would create already exists and is not owned by this cluster."""


class ImmutableChangeError(KubeawsError):
    """The spec asks to change a field that AWS cannot change and kubeaws refuses to replace."""


class AwsCallError(KubeawsError):
    """An AWS call failed for good (after retries)."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.aws_message = message


class WaitTimeout(KubeawsError):
    """A bounded wait for an AWS resource state ran out of time."""


class EmulatorError(KubeawsError):
    """The local AWS emulator could not be started or reached."""
