"""CLI commands about kubeaws itself: `kubeaws version` (the package version, the Kubernetes versions a spec may
ask for with the patch release each is pinned to, and the version of every addon kubeaws installs, per
Kubernetes minor where it follows the minor) and `kubeaws completion bash|zsh|fish` (the shell's completion
script on stdout). No AWS call; nothing heavier than the version tables is imported.

Registered on the main typer app with `register(app)` by kubeaws.cli.main; `init_completion` is called by
`kubeaws.cli.main.main` when the shell asks for completions.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from kubeaws.cli.common import OutputFormat, OutputOpt, run
from kubeaws.cli.output import Out

PROG = "kubeaws"
#: The environment variable the completion scripts set when they ask kubeaws for completions.
COMPLETE_VAR = "_KUBEAWS_COMPLETE"


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def register(app: typer.Typer) -> None:
    app.command("version")(version)
    app.command("completion")(completion)


def versions() -> dict[str, Any]:
    """The `kubeaws version` document: package, Kubernetes minors (pinned patch, pause image, and the
    version-matched cloud-controller-manager and cluster-autoscaler images), and the addons' versions."""
    from kubeaws import __version__
    from kubeaws.addons import DESCRIPTORS
    from kubeaws.addons import versions as pins
    from kubeaws.spec.models import SUPPORTED_KUBERNETES_VERSIONS

    by_name = {addon.name: addon for addon in DESCRIPTORS}

    def matched(addon: str, component: str, minor: str) -> str:
        return by_name[addon].images_for(minor)[component]

    kubernetes = {minor: {"patch": pins.kubernetes_patch(minor), "pause": pins.pause_image(minor),
                          "cloudControllerManager": matched("cloud-provider-aws", "cloud-controller-manager", minor),
                          "clusterAutoscaler": matched("cluster-autoscaler", "cluster-autoscaler", minor)}
                  for minor in SUPPORTED_KUBERNETES_VERSIONS}
    addons = {"calico": pins.CALICO_VERSION, "cilium": pins.CILIUM_VERSION, "rookCeph": pins.ROOK_VERSION}
    addons.update({_camel(name): image for addon in DESCRIPTORS for name, image in addon.images.items()})
    return {"version": __version__, "kubernetesVersions": list(SUPPORTED_KUBERNETES_VERSIONS),
            "kubernetes": kubernetes, "addons": addons}


def _camel(name: str) -> str:
    first, *rest = name.split("-")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def version(output_format: OutputOpt = OutputFormat.text) -> None:
    """Show the kubeaws version, the Kubernetes versions it supports (with the patch release each is pinned
    to) and the versions of the addons it installs."""
    out = Out(output_format.value)

    def body() -> int:
        doc = versions()
        if out.json:
            out.emit(doc)
            return 0
        lines = [f"kubeaws {doc['version']}", "", "Kubernetes (minor: pinned patch; cloud-controller-manager, "
                 "cluster-autoscaler):"]
        for minor, pin in doc["kubernetes"].items():
            ccm = pin["cloudControllerManager"].rsplit(":", 1)[-1]
            autoscaler = pin["clusterAutoscaler"].rsplit(":", 1)[-1]
            lines.append(f"  {minor}: {pin['patch']}  ({ccm}, {autoscaler})")
        lines += ["", "Addons:"]
        width = max(len(name) for name in doc["addons"])
        lines += [f"  {name.ljust(width)}  {value}" for name, value in doc["addons"].items()]
        out.text("\n".join(lines))
        return 0

    run(out, body)


def completion_script(shell: str) -> str:
    """The completion script of `shell` for kubeaws (typer's scripts: they call kubeaws back with
    COMPLETE_VAR set)."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell) + "\n"


def init_completion() -> None:
    """Make kubeaws answer the completion scripts' requests (typer's completion classes for every shell)."""
    from typer._completion_classes import completion_init

    completion_init()


def completion(shell: Annotated[Shell, typer.Argument(help="The shell to complete in.", show_default=False)]
               ) -> None:
    """Print the shell completion script. bash: `source <(kubeaws completion bash)` (or save it in
    ~/.local/share/bash-completion/completions/kubeaws); zsh: save it as `_kubeaws` in a directory of
    $fpath; fish: save it as ~/.config/fish/completions/kubeaws.fish."""
    out = Out("text")

    def body() -> int:
        out.text(completion_script(shell.value))
        return 0

    run(out, body)
