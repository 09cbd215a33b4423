"""Load wangge's OGC API Features collections into QGIS and render them to a PNG.

Documentation tool, not part of `make test`: run it with Debian's Python, which has `qgis.core`
(`apt-get install qgis python3-qgis`), against a wangge that is already serving `/ogc`:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 docs/qgis/screenshot.py http://127.0.0.1:8093/ogc

Every layer goes through QGIS's own OAPIF provider (the one behind Layer → Add Layer → Add WFS /
OGC API – Features Layer), must be valid, and must yield exactly `numberMatched` features of
`/collections/{id}/items`. The script writes a QGIS project (`--project`) with the same layers and
styles, which `capture_gui.py` opens in the real QGIS window, and a rendered map with a legend
(`--out`). It starts no server and changes nothing on the server.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFillSymbol,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsMarkerSymbol,
    QgsPalLayerSettings,
    QgsProject,
    QgsRectangle,
    QgsReferencedRectangle,
    QgsSingleSymbolRenderer,
    QgsSymbolLayerUtils,
    QgsTextBufferSettings,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtCore import QSize, Qt
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


@dataclass(frozen=True)
class Style:
    """How one collection is drawn: outline colour/width in mm, or a dot for points."""

    collection: str
    color: str
    width_mm: float
    label: bool = False
    point: bool = False
    fill: str | None = None  # "r,g,b,a" for filled polygons (buildings)


# Drawn bottom to top: the finest grids first, so the coarser outlines stay visible above them.
STYLES = (
    Style("buildings", "150,150,150", 0.05, fill="210,210,210,255"),
    Style("grids-micro_grid", "120,120,120", 0.1),
    Style("grids-grid", "31,120,180", 0.35),
    Style("grids-community", "227,26,28", 0.9, label=True),
    Style("grids-street", "20,20,20", 1.4),
    Style("monitoring-points", "255,127,0", 1.6, point=True),
)
MAP_CRS = "EPSG:3857"


def fetch_json(url: str) -> dict:
    if not url.startswith(("http://", "https://")):
        raise SystemExit(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310 (checked above)
        return json.load(answer)


def number_matched(base_url: str, collection: str) -> int:
    page = fetch_json(f"{base_url}/collections/{collection}/items?limit=1&f=json")
    return int(page["numberMatched"])


def oapif_layer(base_url: str, collection: str, title: str) -> QgsVectorLayer:
    """The layer QGIS's "OGC API – Features" connection would add (same provider, same URI keys)."""
    uri = f"url='{base_url}' typename='{collection}' pageSize='1000'"
    return QgsVectorLayer(uri, title, "OAPIF")


def apply_style(layer: QgsVectorLayer, style: Style) -> None:
    if style.point:
        symbol = QgsMarkerSymbol.createSimple(
            {
                "name": "circle",
                "color": style.color,
                "outline_color": "255,255,255",
                "outline_width": "0.2",
                "size": str(style.width_mm),
            }
        )
    else:
        symbol = QgsFillSymbol.createSimple(
            {
                "style": "solid" if style.fill else "no",
                "color": style.fill or "0,0,0,0",
                "outline_color": style.color,
                "outline_width": str(style.width_mm),
                "outline_width_unit": "MM",
                "joinstyle": "round",
            }
        )
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))
    if style.label:
        settings = QgsPalLayerSettings()
        settings.fieldName = "name"
        text = QgsTextFormat()
        text.setFont(QFont("Noto Sans CJK SC"))
        text.setSize(10)
        text.setColor(QColor(style.color))
        buffer = QgsTextBufferSettings()
        buffer.setEnabled(True)
        buffer.setSize(1.0)
        buffer.setColor(QColor("white"))
        text.setBuffer(buffer)
        settings.setFormat(text)
        layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
        layer.setLabelsEnabled(True)


def load_layers(base_url: str) -> list[tuple[Style, QgsVectorLayer, int, float]]:
    """Add every styled collection that the service lists; fail loudly on a count mismatch."""
    listed = {c["id"]: c for c in fetch_json(f"{base_url}/collections?f=json")["collections"]}
    loaded = []
    for style in STYLES:
        if style.collection not in listed:
            print(f"skip {style.collection}: not in /collections", file=sys.stderr)
            continue
        title = listed[style.collection].get("title") or style.collection
        started = time.perf_counter()
        layer = oapif_layer(base_url, style.collection, title)
        if not layer.isValid():
            raise SystemExit(f"{style.collection}: QGIS says the OAPIF layer is not valid")
        count = sum(1 for _ in layer.getFeatures())
        seconds = time.perf_counter() - started
        expected = number_matched(base_url, style.collection)
        print(
            f"{style.collection}: valid, crs={layer.crs().authid()}, {count} features "
            f"(numberMatched {expected}), {seconds:.2f} s",
        )
        if count != expected:
            raise SystemExit(f"{style.collection}: QGIS read {count}, numberMatched is {expected}")
        apply_style(layer, style)
        loaded.append((style, layer, count, seconds))
    if not loaded:
        raise SystemExit("no collection could be loaded")
    return loaded


def full_extent(layers: list[QgsVectorLayer], crs: QgsCoordinateReferenceSystem) -> QgsRectangle:
    extent = QgsRectangle()
    extent.setMinimal()
    for layer in layers:
        to_map = QgsCoordinateTransform(layer.crs(), crs, QgsProject.instance())
        extent.combineExtentWith(to_map.transformBoundingBox(layer.extent()))
    extent.scale(1.04)
    return extent


def render(layers: list[QgsVectorLayer], extent: QgsRectangle, size: QSize) -> QImage:
    settings = QgsMapSettings()
    settings.setLayers(list(reversed(layers)))  # QgsMapSettings wants the top layer first
    settings.setDestinationCrs(QgsCoordinateReferenceSystem(MAP_CRS))
    settings.setExtent(extent)
    settings.setOutputSize(size)
    settings.setBackgroundColor(QColor("white"))
    settings.setFlag(QgsMapSettings.Antialiasing, True)
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


LEGEND_WIDTH_PX = 470


def with_legend(
    map_image: QImage, loaded: list[tuple[Style, QgsVectorLayer, int, float]]
) -> QImage:
    """The map on the right, a legend (layer, collection id, feature count) on the left."""
    image = QImage(
        map_image.width() + LEGEND_WIDTH_PX, map_image.height(), QImage.Format_ARGB32_Premultiplied
    )
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    painter.drawImage(LEGEND_WIDTH_PX, 0, map_image)
    painter.setPen(QColor(200, 200, 200))
    painter.drawLine(LEGEND_WIDTH_PX - 1, 0, LEGEND_WIDTH_PX - 1, image.height())
    font = QFont("Noto Sans CJK SC")
    font.setPixelSize(22)
    painter.setFont(font)
    painter.setPen(QColor("black"))
    painter.drawText(24, 48, "wangge · OGC API – Features")
    font.setPixelSize(15)
    painter.setFont(font)
    painter.setPen(QColor(90, 90, 90))
    painter.drawText(24, 74, "QGIS OAPIF 图层（要素数 = numberMatched）")
    font.setPixelSize(17)
    painter.setFont(font)
    icon = QSize(34, 22)
    for row, (style, layer, count, _) in enumerate(reversed(loaded)):
        y = 100 + row * 58
        pixmap = QgsSymbolLayerUtils.symbolPreviewPixmap(layer.renderer().symbol(), icon)
        painter.drawPixmap(24, y + 4, pixmap)
        painter.setPen(QColor("black"))
        painter.drawText(70, y + 20, layer.name())
        painter.setPen(QColor(90, 90, 90))
        painter.drawText(70, y + 44, f"{style.collection} · {count} 个要素")
    painter.end()
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "base_url", help="wangge's OGC API landing page, e.g. http://127.0.0.1:8093/ogc"
    )
    parser.add_argument("--out", default=str(REPO / "docs/images/qgis-wangge-layers-map.png"))
    parser.add_argument("--project", default=str(REPO / "build/qgis/wangge.qgs"))
    parser.add_argument("--size", default="1600x1000")
    args = parser.parse_args()
    base_url = args.base_url.rstrip("/")
    width, height = (int(n) for n in args.size.split("x"))

    QgsApplication.setPrefixPath("/usr", True)
    application = QgsApplication([], False)
    application.initQgis()
    try:
        loaded = load_layers(base_url)
        layers = [layer for _, layer, _, _ in loaded]
        crs = QgsCoordinateReferenceSystem(MAP_CRS)
        extent = full_extent(layers, crs)

        project = QgsProject.instance()
        project.setCrs(crs)
        project.setTitle("wangge")
        for layer in layers:  # each added layer goes on top of the layer panel
            project.addMapLayer(layer)
        project.viewSettings().setDefaultViewExtent(QgsReferencedRectangle(extent, crs))
        Path(args.project).parent.mkdir(parents=True, exist_ok=True)
        if not project.write(args.project):
            raise SystemExit(f"could not write {args.project}")
        print(f"project {args.project}")

        map_image = render(layers, extent, QSize(width - LEGEND_WIDTH_PX, height))
        image = with_legend(map_image, loaded)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        if not image.convertToFormat(QImage.Format_Indexed8, Qt.ThresholdDither).save(args.out):
            raise SystemExit(f"could not write {args.out}")
        print(f"image {args.out} ({Path(args.out).stat().st_size // 1024} KB)")
    finally:
        QgsProject.instance().clear()
        application.exitQgis()


if __name__ == "__main__":
    main()
