"""Class names and colours for GIS software: QGIS styles and GDAL's class sidecar.

QGIS opens ``NAME.qml`` beside ``NAME.tif`` or ``NAME.geojson`` as the layer's default
style, so a class raster shows its class names and colours in the legend, not the 256
entries of a GeoTIFF colour table; a GeoPackage carries the same style in its
``layer_styles`` table, which QGIS reads first. GDAL itself (and tools built on it) reads
class names from the raster's ``.aux.xml`` sidecar, as category names and a raster
attribute table, which neither GeoTIFF nor PNG can hold. Both are plain XML, written with
the standard library.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aerialseg.data.classes import ClassTable, parse_color

QGIS_VERSION = "3.22"  # the oldest QGIS the styles are tested with (Debian 12's)
# One <Category> per value from 0 up: beyond this, value-coded tables get the table only.
MAX_CATEGORY_NAMES = 1024
# GDAL's codes for raster attribute table fields (gdal.h GDALRATFieldType / Usage).
_INTEGER, _STRING = 0, 2
_USAGE = {"Value": 5, "Class": 2, "Red": 6, "Green": 7, "Blue": 8}  # MinMax, Name, colours


def class_codes(classes: ClassTable) -> list[int]:
    """The value the class raster holds for each class: its mask value or its id."""
    codes, _, _ = classes.raster_coding()
    return [int(codes[i]) for i in range(classes.num_classes)]


def _qgis_document() -> ET.Element:
    return ET.Element("qgis", version=QGIS_VERSION, styleCategories="Symbology")


def _text(root: ET.Element) -> str:
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + "\n"


def raster_qml(classes: ClassTable) -> str:
    """A QGIS style for the class raster: a paletted renderer, one entry per class."""
    root = _qgis_document()
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(
        pipe,
        "rasterrenderer",
        type="paletted",
        band="1",
        opacity="1",
        alphaBand="-1",
        nodataColor="",
    )
    palette = ET.SubElement(renderer, "colorPalette")
    for code, cls in zip(class_codes(classes), classes.classes, strict=True):
        ET.SubElement(
            palette,
            "paletteEntry",
            value=str(code),
            color=cls.display_color.lower(),
            alpha="255",
            label=cls.name,
        )
    # classes stay classes when zoomed out: no blending of neighbouring colours
    provider = ET.SubElement(pipe, "provider")
    ET.SubElement(
        provider,
        "resampling",
        enabled="false",
        zoomedInResamplingMethod="nearestNeighbour",
        zoomedOutResamplingMethod="nearestNeighbour",
        maxOversampling="2",
    )
    return _text(root)


def polygons_qml(classes: ClassTable, field: str = "class_id") -> str:
    """A QGIS style for the polygons: categorised by ``field`` (the raster value), each
    class filled in its display colour and named in the legend."""
    root = _qgis_document()
    renderer = ET.SubElement(
        root,
        "renderer-v2",
        type="categorizedSymbol",
        attr=field,
        symbollevels="0",
        forceraster="0",
        enableorderby="0",
    )
    categories = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for i, (code, cls) in enumerate(zip(class_codes(classes), classes.classes, strict=True)):
        ET.SubElement(
            categories, "category", value=str(code), label=cls.name, symbol=str(i), render="true"
        )
        symbol = ET.SubElement(
            symbols, "symbol", type="fill", name=str(i), alpha="1", clip_to_extent="1"
        )
        layer = ET.SubElement(symbol, "layer", {"class": "SimpleFill", "enabled": "1"})
        fill = {
            "color": ",".join(map(str, parse_color(cls.display_color))) + ",255",
            "style": "solid",
            "outline_color": "35,35,35,255",
            "outline_style": "solid",
            "outline_width": "0.1",
            "outline_width_unit": "MM",
        }
        # QGIS writes both forms of a symbol layer's settings: <Option> (read by newer
        # versions) and <prop> (by older ones); so does this.
        options = ET.SubElement(layer, "Option", type="Map")
        for key, value in fill.items():
            ET.SubElement(options, "Option", type="QString", name=key, value=value)
        for key, value in fill.items():
            ET.SubElement(layer, "prop", k=key, v=value)
    return _text(root)


TASK_COLOR = "255,64,0,255"  # orange: seen over imagery and over every class colour


def _symbol_layer(parent: ET.Element, klass: str, props: dict[str, str]) -> None:
    """A symbol layer, with its settings in both forms QGIS writes: <Option> (read by
    newer versions) and <prop> (by older ones)."""
    layer = ET.SubElement(parent, "layer", {"class": klass, "enabled": "1"})
    options = ET.SubElement(layer, "Option", type="Map")
    for key, value in props.items():
        ET.SubElement(options, "Option", type="QString", name=key, value=value)
    for key, value in props.items():
        ET.SubElement(layer, "prop", k=key, v=value)


def tasks_qml(rank_field: str = "rank") -> str:
    """A QGIS style for labelling tasks: each block outlined, unfilled, its rank written
    in the middle."""
    root = ET.Element(
        "qgis", version=QGIS_VERSION, styleCategories="Symbology|Labeling", labelsEnabled="1"
    )
    renderer = ET.SubElement(
        root, "renderer-v2", type="singleSymbol", symbollevels="0", forceraster="0"
    )
    symbols = ET.SubElement(renderer, "symbols")
    symbol = ET.SubElement(symbols, "symbol", type="fill", name="0", alpha="1")
    outline = {
        "color": "0,0,0,0",
        "style": "no",
        "outline_color": TASK_COLOR,
        "outline_style": "solid",
        "outline_width": "0.8",
        "outline_width_unit": "MM",
    }
    _symbol_layer(symbol, "SimpleFill", outline)
    labeling = ET.SubElement(root, "labeling", type="simple")
    settings = ET.SubElement(labeling, "settings", calloutType="simple")
    ET.SubElement(
        settings,
        "text-style",
        fieldName=rank_field,
        isExpression="0",
        fontSize="14",
        fontWeight="75",
        textColor=TASK_COLOR,
    )
    buffer = ET.SubElement(settings, "text-buffer", bufferDraw="1", bufferSize="1")
    buffer.set("bufferColor", "255,255,255,255")
    ET.SubElement(settings, "placement", placement="1")  # over the polygon's centroid
    return _text(root)


def class_pam(classes: ClassTable, existing: str | None = None) -> str:
    """GDAL's ``.aux.xml`` for the class raster: band 1's category names and a thematic
    raster attribute table (value, class, colour). ``existing``: a sidecar GDAL wrote
    (a PNG's georeference), kept and added to."""
    root = ET.fromstring(existing) if existing else ET.Element("PAMDataset")
    band = root.find("PAMRasterBand[@band='1']")
    if band is None:
        band = ET.SubElement(root, "PAMRasterBand", band="1")
    for old in band.findall("CategoryNames") + band.findall("GDALRasterAttributeTable"):
        band.remove(old)
    codes = class_codes(classes)
    if max(codes) < MAX_CATEGORY_NAMES:
        names = [""] * (max(codes) + 1)
        for code, name in zip(codes, classes.names, strict=True):
            names[code] = name
        categories = ET.SubElement(band, "CategoryNames")
        for name in names:
            ET.SubElement(categories, "Category").text = name
    rat = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
    for i, (field, usage) in enumerate(_USAGE.items()):
        defn = ET.SubElement(rat, "FieldDefn", index=str(i))
        ET.SubElement(defn, "Name").text = field
        ET.SubElement(defn, "Type").text = str(_STRING if field == "Class" else _INTEGER)
        ET.SubElement(defn, "Usage").text = str(usage)
    for row, (code, cls) in enumerate(zip(codes, classes.classes, strict=True)):
        entry = ET.SubElement(rat, "Row", index=str(row))
        for value in (code, cls.name, *parse_color(cls.display_color)):
            ET.SubElement(entry, "F").text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"
