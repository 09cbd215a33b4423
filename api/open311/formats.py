"""The spec's two formats: a document becomes JSON as it is, or XML built with ElementTree.

XML is built element by element, never by pasting values into markup, and text that XML 1.0
cannot carry (control characters a client may have posted) becomes U+FFFD, so every answer is
well-formed whatever was stored.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # building only: nothing here parses XML
from typing import Any, Literal

import orjson

Format = Literal["json", "xml"]
FORMATS: tuple[Format, ...] = ("json", "xml")
MEDIA_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

# In XML a list is a wrapper element of repeated children: <attributes><attribute>…</attribute>.
LIST_ITEMS = {
    "endpoints": "endpoint",
    "formats": "format",
    "attributes": "attribute",
    "values": "value",
}
# Characters XML 1.0 allows (https://www.w3.org/TR/xml/#charsets); anything else is replaced.
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Open311Error(Exception):
    """A request the spec's way refuses: an HTTP status and a description (English / 中文)."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description

    def document(self) -> list[dict[str, Any]]:
        return [{"code": self.status, "description": self.description}]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("\ufffd", str(value))


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, dict):
        for name, child in value.items():
            _fill(ET.SubElement(element, name), child)
    elif isinstance(value, list):
        item = LIST_ITEMS[element.tag]
        for child in value:
            _fill(ET.SubElement(element, item), child)
    else:
        element.text = _text(value)


def to_xml(root: str, body: Any, item: str | None = None) -> bytes:
    """`body` under `root`; a list body repeats `item` (<service_requests><request>…)."""
    element = ET.Element(root)
    if isinstance(body, list):
        if item is None:
            raise ValueError(f"a list under <{root}> needs an item name")
        for entry in body:
            _fill(ET.SubElement(element, item), entry)
    else:
        _fill(element, body)
    return XML_DECLARATION + ET.tostring(element, encoding="utf-8", xml_declaration=False)


def render(fmt: Format, root: str, body: Any, item: str | None = None) -> bytes:
    """One document in the requested format."""
    if fmt == "json":
        return orjson.dumps(body)
    return to_xml(root, body, item)


def render_error(fmt: Format, error: Open311Error) -> bytes:
    """The spec's error document: [{"code", "description"}] or <errors><error>…</error></errors>."""
    return render(fmt, "errors", error.document(), "error")
