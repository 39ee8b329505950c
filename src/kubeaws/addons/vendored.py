"""The upstream manifests kubeaws ships in the package (`addons/vendor/<addon>/<version>/<file>`), each
recorded in `vendor/SOURCES.json` with its repository, commit, path and sha256; and the split/join of
multi-document YAML that lets kubeaws change a few documents of such a file and keep the others verbatim.

Nothing is downloaded at boot: the files are read from the package, their digest checked at every read
(`VendoredFileError` on a mismatch), and kubeaws uploads them, with the per-cluster values and the mirror
applied (kubeaws.addons.upstream), to the state bucket. Written by tools/vendor_addons.py; checked by
tests/test_vendored.py. Called by kubeaws.addons.upstream (and through it the addon renderers).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

__all__ = ["SOURCES", "VendoredFile", "VendoredFileError", "find", "join_documents", "read", "sources",
           "split_documents", "transform_documents"]

#: The record of every vendored file, relative to the package `kubeaws.addons`.
SOURCES = "vendor/SOURCES.json"

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
#: A document separator: `---` alone on its line (at column 0, so never inside a block scalar of a mapping).
_SEPARATOR = re.compile(r"(^---[ \t]*(?:#[^\n]*)?\n)", re.M)


class VendoredFileError(RuntimeError):
    """A vendored file is missing or is not the file SOURCES.json records (the package was altered)."""


@dataclass(frozen=True)
class VendoredFile:
    """One file of SOURCES.json: `path` under vendor/, where it comes from and its digest."""

    addon: str
    version: str
    path: str
    repository: str
    commit: str | None
    upstream_path: str
    sha256: str
    rendered: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@cache
def sources() -> tuple[VendoredFile, ...]:
    """Every file SOURCES.json records."""
    doc = json.loads(resources.files("kubeaws.addons").joinpath(SOURCES).read_text())
    return tuple(VendoredFile(addon=f["addon"], version=f["version"], path=f["path"], repository=f["repository"],
                              commit=f.get("commit"), upstream_path=f["upstreamPath"], sha256=f["sha256"],
                              rendered=f.get("rendered")) for f in doc["files"])


def find(addon: str, name: str, version: str | None = None) -> VendoredFile:
    """The vendored file `name` of an addon (at `version`, or the only version shipped)."""
    found = [f for f in sources() if f.addon == addon and f.name == name and version in (None, f.version)]
    if len(found) != 1:
        raise VendoredFileError(f"{SOURCES} has {len(found)} entries for {addon}/{version or '*'}/{name}")
    return found[0]


@cache
def _read(path: str, digest: str) -> str:
    try:
        data = resources.files("kubeaws.addons").joinpath(f"vendor/{path}").read_bytes()
    except OSError as exc:
        raise VendoredFileError(f"vendored file {path} is missing from the package: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise VendoredFileError(f"vendored file {path} has sha256 {actual}, {SOURCES} records {digest}: "
                                "reinstall kubeaws, or rerun tools/vendor_addons.py after a deliberate change")
    return data.decode()


def read(addon: str, name: str, version: str | None = None) -> str:
    """The text of a vendored file, its sha256 checked against SOURCES.json."""
    entry = find(addon, name, version)
    return _read(entry.path, entry.sha256)


def split_documents(text: str) -> list[str]:
    """A multi-document YAML stream cut into pieces that join back to `text` exactly: the separators
    (`---` lines) are pieces of their own, so `"".join(split_documents(t)) == t`."""
    return [piece for piece in _SEPARATOR.split(text) if piece]


def join_documents(pieces: list[str]) -> str:
    return "".join(pieces)


def dump_document(doc: Any) -> str:
    """One document as kubeaws writes a document it changed (block style, keys in their order)."""
    return str(yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100000))


def transform_documents(text: str, change: Callable[[dict[str, Any]], bool],
                        wanted: Callable[[str], bool] = lambda piece: True) -> str:
    """`text` with `change` applied to each document: `change` edits the parsed document in place and says
    whether it changed it; a changed document is written anew (`dump_document`), every other one stays
    verbatim, comments included. `wanted(piece)` (on the text) skips parsing documents that cannot change."""
    out: list[str] = []
    for piece in split_documents(text):
        if _SEPARATOR.fullmatch(piece) or not wanted(piece):
            out.append(piece)
            continue
        doc = yaml.load(piece, Loader=_Loader)
        if isinstance(doc, dict) and change(doc):
            out.append(dump_document(doc))
        else:
            out.append(piece)
    return join_documents(out)
