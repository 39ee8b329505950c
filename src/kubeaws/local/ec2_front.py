"""The local emulator's EC2 front: a WSGI layer in front of moto's server app, in the same process, that pages the
launch-template describes as EC2 does. Everything else goes to moto unchanged.

moto answers DescribeLaunchTemplates and DescribeLaunchTemplateVersions with at most MaxResults items (15 when
none is given) and never a NextToken: with 100 node groups a re-plan saw 15 launch templates, planned 85
creates, a re-apply failed on AlreadyExists and a delete left 85 templates behind. Here moto is asked for every
item (its MaxResults raised, the front's token removed), and the front cuts the page: items in a stable order
(template ID; then version number), MaxResults of them (1-200, as EC2 bounds it; every item when none is
given), and a NextToken naming the last item served when more follow. A token names an item, not an offset,
so a template deleted between two pages shifts nothing.

Mounted by kubeaws.local.moto_server between the EKS front and moto's DomainDispatcherApplication.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode

from kubeaws.local.wsgi import collect

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
_EC2_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[a-z0-9-]+/ec2/aws4_request")
#: The page EC2 allows for these two describes.
MAX_PAGE = 200
#: What moto is asked for: every item.
_ALL = 1_000_000


def _template_key(item: ET.Element, ns: str) -> tuple[str, int]:
    return (item.findtext(f"{ns}launchTemplateId") or "", 0)


def _version_key(item: ET.Element, ns: str) -> tuple[str, int]:
    number = item.findtext(f"{ns}versionNumber") or "0"
    return (item.findtext(f"{ns}launchTemplateId") or "", int(number) if number.isdigit() else 0)


#: Action -> (the XML element holding the items, the stable sort key of an item).
PAGED: dict[str, tuple[str, Callable[[ET.Element, str], tuple[str, int]]]] = {
    "DescribeLaunchTemplates": ("launchTemplates", _template_key),
    "DescribeLaunchTemplateVersions": ("launchTemplateVersionSet", _version_key),
}


class PageError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def encode_token(key: tuple[str, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_token(token: str) -> tuple[str, int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(raw[0]), int(raw[1])
    except (ValueError, TypeError, IndexError, KeyError, binascii.Error):
        raise PageError("InvalidParameterValue", f"The token '{token}' is invalid.") from None


class Ec2Front:
    """The WSGI application: the two paged describes of the module docstring, everything else to `app`."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if str(environ.get("REQUEST_METHOD", "")).upper() != "POST" or not _EC2_SCOPE.search(
                str(environ.get("HTTP_AUTHORIZATION", ""))):
            return self.app(environ, start_response)
        body = _read_body(environ)
        form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        action = next((v for k, v in form if k == "Action"), "")
        if action not in PAGED:
            return self.app(environ, start_response)
        try:
            return self.paged(environ, start_response, action, form)
        except PageError as exc:
            return _error(start_response, exc.code, exc.message)

    def paged(self, environ: Environ, start_response: StartResponse, action: str,
              form: list[tuple[str, str]]) -> Iterable[bytes]:
        asked = dict(form)
        size = _page_size(asked.get("MaxResults"))
        after = decode_token(asked["NextToken"]) if asked.get("NextToken") else None
        rest = [(k, v) for k, v in form if k not in ("MaxResults", "NextToken")] + [("MaxResults", str(_ALL))]
        status, headers, payload = self.forward(environ, urlencode(rest).encode())
        if status != 200:
            return _respond(start_response, status, headers, payload)
        root = ET.fromstring(payload)
        ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        container_name, key_of = PAGED[action]
        container = root.find(f"{ns}{container_name}")
        if container is None:
            return _respond(start_response, status, headers, payload)
        items = sorted(container.findall(f"{ns}item"), key=lambda i: key_of(i, ns))
        if after is not None:
            items = [i for i in items if key_of(i, ns) > after]
        page = items if size is None else items[:size]
        for child in list(container):
            container.remove(child)
        container.extend(page)
        for old in root.findall(f"{ns}nextToken"):
            root.remove(old)
        if size is not None and len(items) > size:
            token = ET.SubElement(root, f"{ns}nextToken")
            token.text = encode_token(key_of(page[-1], ns))
        if ns:
            ET.register_namespace("", ns.strip("{}"))
        return _respond(start_response, status, headers, ET.tostring(root, encoding="utf-8", xml_declaration=True))

    def forward(self, environ: Environ, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the request with `body` to moto and collect its whole answer."""
        inner = dict(environ)
        inner["wsgi.input"], inner["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        return collect(self.app, inner)


def _page_size(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        size = int(value)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_PAGE:
        raise PageError("InvalidParameterValue",
                        f"Value ( {value} ) for parameter maxResults is invalid. Expecting a value between 1 and "
                        f"{MAX_PAGE}.")
    return size


def _read_body(environ: Environ) -> bytes:
    """The request body, read once; the WSGI input is replaced so that moto can read it again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
    return body


def _respond(start_response: StartResponse, status: int, headers: list[tuple[str, str]],
             payload: bytes) -> Iterable[bytes]:
    kept = [(k, v) for k, v in headers if k.lower() != "content-length"]
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    start_response(f"{status} {phrase}", [*kept, ("Content-Length", str(len(payload)))])
    return [payload]


def _error(start_response: StartResponse, code: str, message: str) -> Iterable[bytes]:
    """An EC2 error answer (HTTP 400, EC2's XML shape)."""
    root = ET.Element("Response")
    error = ET.SubElement(ET.SubElement(root, "Errors"), "Error")
    ET.SubElement(error, "Code").text = code
    ET.SubElement(error, "Message").text = message
    ET.SubElement(root, "RequestID").text = str(uuid.uuid4())
    payload = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return _respond(start_response, 400, [("Content-Type", "text/xml")], payload)
