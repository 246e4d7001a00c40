"""Render suggest's tasks over their scene in a real QGIS, for docs/suggest.md.

Run with the system Python that has QGIS's bindings (Debian: python3-qgis), headless:

    .venv/bin/aerialseg suggest examples/dubai-sample.tif --out /tmp/s/tasks.gpkg \\
        --count 6 --block-size 128m --prelabel
    QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/render_suggest_picture.py \\
        examples/dubai-sample.tif /tmp/s/tasks.gpkg docs/images/suggest-qgis.png

Each layer is opened as a user opens it, so it takes the style the GeoPackage carries:
the picture shows what a labeller sees.
"""

import sys

from qgis.core import (
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor

scene, tasks, out = sys.argv[1:4]
app = QgsApplication([], False)
app.initQgis()
image = QgsRasterLayer(scene, "scene")
prelabel = QgsVectorLayer(f"{tasks}|layername=prelabel", "prelabel", "ogr")
prelabel.setOpacity(0.45)
blocks = QgsVectorLayer(f"{tasks}|layername=tasks", "tasks", "ogr")
for layer in (image, prelabel, blocks):
    if not layer.isValid():
        sys.exit(f"QGIS could not open {layer.name()}")
settings = QgsMapSettings()
settings.setLayers([blocks, prelabel, image])  # top first
settings.setDestinationCrs(image.crs())
settings.setExtent(image.extent())
settings.setOutputSize(QSize(900, int(900 * image.height() / image.width())))
settings.setBackgroundColor(QColor("white"))
job = QgsMapRendererParallelJob(settings)
job.start()
job.waitForFinished()
job.renderedImage().save(out, "png")
print(f"wrote {out}")
