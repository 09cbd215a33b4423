"""Run inside the QGIS desktop (`qgis --code docs/qgis/capture_gui.py`): wait for the map, then signal.

`screenshot.sh` starts QGIS on a virtual X display with the project that `screenshot.py` wrote.
Once the canvas has drawn every OAPIF layer, this script expands the layer panel, writes
`$WANGGE_QGIS_READY` (the shell then grabs the whole X screen with ImageMagick's `import`) and
keeps a Qt grab of the main window as a fallback in `$WANGGE_QGIS_GRAB`.
"""

from __future__ import annotations

import os
from pathlib import Path

from qgis.core import QgsProject
from qgis.PyQt.QtCore import QModelIndex, QPersistentModelIndex, QTimer
from qgis.PyQt.QtWidgets import QAbstractItemView, QApplication, QDockWidget, QTreeView
from qgis.utils import iface

READY = Path(os.environ["WANGGE_QGIS_READY"])
GRAB = Path(os.environ["WANGGE_QGIS_GRAB"])
SETTLE_MS = 3000
EXPANDED: list = []  # [browser view, index of the last expanded item]  # labels and the last OAPIF pages arrive after the first "refreshed"


def finish() -> None:
    iface.mainWindow().grab().save(str(GRAB))
    READY.write_text("ready\n")


def on_refreshed() -> None:
    iface.mapCanvas().mapCanvasRefreshed.disconnect(on_refreshed)
    if EXPANDED:  # the connection's collections at the top of the Browser panel
        view, index = EXPANDED
        view.scrollTo(QModelIndex(index), QAbstractItemView.PositionAtTop)
    QTimer.singleShot(SETTLE_MS, finish)


def start() -> None:
    window = iface.mainWindow()
    # Xvfb has no window manager, so "maximised" means: the whole screen, by hand.
    window.setGeometry(QApplication.primaryScreen().geometry())
    canvas = iface.mapCanvas()
    canvas.setExtent(QgsProject.instance().viewSettings().defaultViewExtent())
    iface.layerTreeView().expandAll()
    expand_connection()
    canvas.mapCanvasRefreshed.connect(on_refreshed)
    canvas.refresh()  # redraw from QGIS's feature cache; refreshAllLayers() would download again


def expand_connection() -> None:
    """Open Browser → WFS / OGC API – Features → wangge, so the collection list shows."""
    dock = iface.mainWindow().findChild(QDockWidget, "Browser")
    view = dock.findChild(QTreeView) if dock is not None else None
    if view is None:
        return
    model = view.model()

    def expand(parent, names: list[str]) -> None:  # type: ignore[no-untyped-def]
        if not names:
            return
        for row in range(model.rowCount(parent)):
            index = model.index(row, 0, parent)
            if model.data(index) == names[0]:
                view.expand(index)
                EXPANDED[:] = [view, QPersistentModelIndex(index)]
                # children of a connection arrive asynchronously (GET /ogc/collections)
                QTimer.singleShot(800, lambda found=index: expand(found, names[1:]))
                return

    expand(QModelIndex(), ["WFS / OGC API - Features", "wangge"])


QTimer.singleShot(1500, start)
