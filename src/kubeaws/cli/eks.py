"""CLI command `kubeaws token`: the EKS ExecCredential that the kubeconfig's exec plugin runs (what `aws eks
get-token` prints). Local signing only: no AWS call, so it answers offline with any credentials.

Registered on the main typer app by kubeaws.cli.main (`eks.register(app)`).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

from kubeaws.cli.common import BadInput, OutputFormat, run
from kubeaws.cli.output import Out


def register(app: typer.Typer) -> None:
    app.command("token")(token)


def token(cluster: Annotated[str, typer.Option("--cluster", help="EKS cluster name.", show_default=False)],
          region: Annotated[str | None, typer.Option("--region", help="AWS region of the cluster (default: the "
                                                     "SDK's, e.g. AWS_REGION).")] = None,
          profile: Annotated[str | None, typer.Option("--profile", help="AWS profile (default: the SDK's "
                                                      "resolution).")] = None,
          output_format: Annotated[OutputFormat, typer.Option("--output", "-o", help="Output format (text is "
                                                              "JSON, what kubectl reads).")] = OutputFormat.json
          ) -> None:
    """Print an ExecCredential (client.authentication.k8s.io/v1beta1) with a token for an EKS cluster."""
    out = Out("text")  # errors on stderr even in json/yaml: kubectl shows the plugin's stderr, parses its stdout

    def body() -> int:
        import botocore.session

        from kubeaws.eks_auth import eks_token

        if not cluster.strip():
            raise BadInput("--cluster must not be empty")
        session = botocore.session.Session(profile=profile)
        where = region or os.environ.get("AWS_REGION") or session.get_config_variable("region")
        if not where:
            raise BadInput("no AWS region: pass --region or set AWS_REGION (or the profile's region)")
        credential = eks_token(cluster, where, session=session)
        if output_format == OutputFormat.yaml:
            Out("yaml").emit(credential)
        else:
            sys.stdout.write(json.dumps(credential) + "\n")  # one line, as `aws eks get-token` prints it
        return 0

    run(out, body)
