"""What GDAL is handed: a local file whose bytes are the format its name says, network off.

GDAL picks a driver by sniffing content, whatever the extension: a `.geojson` holding
`<OGRVRTDataSource>` is opened by the VRT driver, which reads any local file or URL it names,
and one holding a GDALG pipeline runs it. pyogrio cannot restrict the drivers tried on open, so
the formats that have a driver prefix are opened through it (`GeoJSON:`, `GPKG:`, `CSV:`, and
no other driver is asked), and Shapefiles and KML only after their magic bytes or root element
say what they are.
"""

from __future__ import annotations

import codecs
import json
import mmap
import re
from pathlib import Path

import pyogrio
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

# GDAL has no switch that turns its HTTP client off. A proxy that refuses connections stops
# every fetch unless the environment's NO_PROXY covers the host, so the one read we know
# fetches (GeoJSON's old `crs` of type link/url, see _geojson) is also refused outright.
NO_NETWORK = {
    "GDAL_HTTP_PROXY": "127.0.0.1:9",
    "GDAL_HTTPS_PROXY": "127.0.0.1:9",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_MAX_RETRY": "0",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".wangge-never",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
}
pyogrio.set_gdal_config_options(NO_NETWORK)

PREFIXES = {"GeoJSON": "GeoJSON:", "GPKG": "GPKG:", "CSV": "CSV:"}
HEAD_BYTES = 64 * 1024
# Attribute encodings GDAL may be asked for (Python codec name → GDAL/iconv name).
ENCODINGS = {
    "utf-8": "UTF-8",
    "gbk": "GBK",
    "gb18030": "GB18030",
    "gb2312": "GB2312",
    "big5": "BIG5",
    "iso8859-1": "ISO-8859-1",
}


class RefusedFile(ValueError):
    """The file is not what its name says, or asks GDAL to read something else."""


def gdal_path(path: Path, driver: str) -> str:
    """The name to open `path` with, so that only `driver` can read it; refuses other content."""
    name = str(path)
    if name.startswith("/vsi"):
        raise RefusedFile(f"{name}：不支持 GDAL 虚拟路径（/vsi…），请给出本地文件")
    if not path.is_file():
        raise RefusedFile(f"{name}：不是文件")
    CHECKS[driver](path)
    if driver == "GPKG" and ":" in name:
        # GPKG:file:table — a colon in the path would be read as the table separator.
        raise RefusedFile(f"{name}：GeoPackage 的路径中不能有冒号")
    return PREFIXES.get(driver, "") + name


def gdal_encoding(name: str) -> str:
    """The GDAL name of an attribute encoding on the short list; ValueError for any other."""
    canonical = None
    if re.fullmatch(r"[A-Za-z0-9_-]{1,20}", name.strip()):
        try:
            canonical = codecs.lookup(name.strip()).name
        except LookupError:
            canonical = None
    if canonical not in ENCODINGS:
        raise ValueError(
            f"不支持的编码 {name!r}（支持：UTF-8、GBK、GB18030、GB2312、BIG5、LATIN1）"
        )
    return ENCODINGS[canonical]


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(HEAD_BYTES).removeprefix(b"\xef\xbb\xbf")


# A JSON key spelled with escapes (`"\u0063rs"`) means the same to GDAL; no writer escapes
# ASCII letters, so a file that does is refused rather than decoded twice.
ESCAPED_LETTER = re.compile(rb"\\u00(?:[46][1-9a-fA-F]|[57][0-9aA])")
CRS_MEMBER = re.compile(rb'"crs"\s*:\s*', re.IGNORECASE)


def _geojson(path: Path) -> None:
    if not _head(path).lstrip().startswith(b"{"):
        raise RefusedFile(f"{path.name}：不是 GeoJSON（应以 {{ 开头）")
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if ESCAPED_LETTER.search(data):
            raise RefusedFile(f"{path.name}：GeoJSON 中有转义的英文字母（\\u00xx），拒绝读取")
        for match in CRS_MEMBER.finditer(data):
            # GDAL fetches a crs of type link/url (on the collection or any geometry) while reading.
            text = data[match.end() : match.end() + HEAD_BYTES].decode("utf-8", errors="replace")
            try:
                crs, _ = json.JSONDecoder().raw_decode(text)
            except ValueError:
                crs = {"type": "link"}  # too long or malformed: treat as the worst case
            kind = (
                next((str(v) for k, v in crs.items() if k.lower() == "type"), "")
                if isinstance(crs, dict)
                else ""
            )
            if kind.lower().startswith(("link", "url")):
                raise RefusedFile(
                    f"{path.name}：GeoJSON 的 crs 引用外部链接（type={kind}），不支持；"
                    "请改用 EPSG 代码或在导入时指定坐标系"
                )


def _gpkg(path: Path) -> None:
    if not _head(path).startswith(b"SQLite format 3\x00"):
        raise RefusedFile(f"{path.name}：不是 GeoPackage（SQLite）文件")


def _shapefile(path: Path) -> None:
    if not _head(path).startswith(b"\x00\x00\x27\x0a"):
        raise RefusedFile(f"{path.name}：不是 Shapefile（.shp 文件头不对）")


KML_ROOT = re.compile(
    rb"\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*<(?:[A-Za-z_][\w.-]*:)?kml[\s>]", re.DOTALL
)


# Markup that makes another GDAL driver claim an XML file (VRT reads any file or URL it names,
# WFS fetches, GDALG runs a pipeline, PDS4 labels name other files), wherever it stands.
FOREIGN_XML = re.compile(
    rb"OGR\w*DataSource|GDAL_WMS|gdal_streamed_alg|Product_|PDS4|GDALG", re.IGNORECASE
)


def _kml(path: Path) -> None:
    """KML has no driver prefix, so GDAL sniffs it: only one well-formed XML document rooted at
    <kml>, with no DOCTYPE and no markup another driver would claim, is handed over."""
    head = _head(path)
    if not KML_ROOT.match(head):
        raise RefusedFile(f"{path.name}：不是 KML（根元素应为 <kml>）")
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data.find(b"<!DOCTYPE") >= 0 or data.find(b"<!ENTITY") >= 0:
            raise RefusedFile(f"{path.name}：KML 中不允许 DOCTYPE/ENTITY 声明")
        if (foreign := FOREIGN_XML.search(data)) is not None:
            raise RefusedFile(
                f"{path.name}：KML 中含有 {foreign.group().decode(errors='replace')}，拒绝读取"
            )
    try:
        # defusedxml refuses entities and DTDs; content after </kml> is a parse error here.
        for _, element in ElementTree.iterparse(path, events=("end",)):
            element.clear()
    except (ElementTree.ParseError, DefusedXmlException) as error:
        raise RefusedFile(f"{path.name}：不是格式正确的 KML（XML）：{error}") from error


def _csv(path: Path) -> None:
    """The CSV: prefix alone makes GDAL read the file as CSV."""


CHECKS = {
    "GeoJSON": _geojson,
    "GPKG": _gpkg,
    "ESRI Shapefile": _shapefile,
    "KML": _kml,
    "CSV": _csv,
}
