"""`RetriesExhausted`, the error `aws.retry.retry_on_codes` raises when its budget runs out: a botocore
ClientError, so it lives apart from aws.retry, which must import without botocore (`kubeaws render` builds the
model, whose modules import aws.retry, with no AWS SDK import). Import it from aws.retry as before.
"""

from __future__ import annotations

from botocore.exceptions import ClientError


class RetriesExhausted(ClientError):  # type: ignore[misc]  # botocore has no type hints
    """A call still failing with a code `retry_on_codes` retries when its time budget ran out. Same error code
    and operation as the last AWS answer (callers that test the code behave as before); the message says
    what kubeaws waited for, how long and how many times it tried, then gives AWS's own message."""

    def __init__(self, last: ClientError, what: str, seconds: float, attempts: int) -> None:
        error = dict(last.response.get("Error") or {})
        error["Message"] = (f"gave up after {seconds:.0f}s and {attempts} attempts waiting for {what}: "
                            f"{error.get('Message', '')}")
        super().__init__({**last.response, "Error": error}, last.operation_name)
        self.what = what
        self.seconds = seconds
        self.attempts = attempts
