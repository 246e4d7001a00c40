"""styles: the QGIS raster style and GDAL's class sidecar list each class at its raster value."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aerialseg.data.classes import DUBAI_CLASSES, ClassTable, parse_color
from aerialseg.inference.styles import MAX_CATEGORY_NAMES, class_pam, raster_qml


def qml_root(text: str) -> ET.Element:
    doctype, body = text.split("\n", 1)
    assert doctype.startswith("<!DOCTYPE qgis")
    return ET.fromstring(body)


def test_raster_style_is_a_palette_of_the_classes():
    renderer = qml_root(raster_qml(DUBAI_CLASSES)).find("pipe/rasterrenderer")
    assert renderer is not None and renderer.get("type") == "paletted"
    entries = [
        (e.get("value"), e.get("label"), e.get("color")) for e in renderer.iter("paletteEntry")
    ]
    assert entries == [
        (str(i), c.name, c.display_color.lower()) for i, c in enumerate(DUBAI_CLASSES.classes)
    ]


def test_value_coded_classes_are_named_at_their_values():
    table = ClassTable.from_dict(
        {"classes": [{"name": "Road", "mask_value": 7}, {"name": "Tree & shrub", "mask_value": 2}]}
    )
    renderer = qml_root(raster_qml(table)).find("pipe/rasterrenderer")
    assert renderer is not None
    assert {e.get("value"): e.get("label") for e in renderer.iter("paletteEntry")} == {
        "7": "Road",
        "2": "Tree & shrub",
    }
    band = ET.fromstring(class_pam(table)).find("PAMRasterBand[@band='1']")
    assert band is not None
    names = [c.text or "" for c in band.iter("Category")]
    assert names == ["", "", "Tree & shrub", "", "", "", "", "Road"]  # one per value from 0
    rows = [[f.text for f in row.iter("F")] for row in band.iter("Row")]
    colours = [list(map(str, parse_color(c.display_color))) for c in table.classes]
    assert rows == [["7", "Road", *colours[0]], ["2", "Tree & shrub", *colours[1]]]


def test_large_values_get_the_attribute_table_only():
    table = ClassTable.from_dict({"classes": [{"name": "A", "mask_value": MAX_CATEGORY_NAMES}]})
    band = ET.fromstring(class_pam(table)).find("PAMRasterBand")
    assert band is not None and band.find("CategoryNames") is None
    assert [f.text for f in band.iter("F")][:2] == [str(MAX_CATEGORY_NAMES), "A"]


def test_a_sidecar_gdal_wrote_is_kept():
    gdal = (
        '<PAMDataset><SRS>EPSG:32640</SRS><PAMRasterBand band="1">'
        "<NoDataValue>255</NoDataValue></PAMRasterBand></PAMDataset>"
    )
    root = ET.fromstring(class_pam(DUBAI_CLASSES, gdal))
    assert root.findtext("SRS") == "EPSG:32640"
    band = root.find("PAMRasterBand")
    assert band is not None and band.findtext("NoDataValue") == "255"
    assert [c.text for c in band.iter("Category")] == DUBAI_CLASSES.names
