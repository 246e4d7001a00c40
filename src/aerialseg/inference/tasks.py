"""The labelling tasks ``aerialseg suggest`` chose, as files a labeller opens in QGIS.

``NAME.gpkg`` holds the layer ``tasks`` (one polygon per block: rank, score and its parts,
predicted class shares, a one-line reason) and, with ``prelabel``, the layer ``prelabel``
(the model's polygons inside each task, in the class table's names and colours, for a
labeller to correct rather than draw). Both layers carry their QGIS style in the
GeoPackage's ``layer_styles`` table; ``NAME.qml`` holds the tasks' style as well.
``NAME_labelled_area.gpkg`` is the area labelled once the tasks are done (the earlier
labelled area plus the task blocks): what training takes as ``--labelled-area``. A plain
image's tasks are in its pixel coordinates, as predict's polygons are, and have no
labelled area (polygon labels need a georeference).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import fiona
import numpy as np
import shapely
from rasterio._err import CPLE_BaseError
from rasterio.features import shapes
from rasterio.warp import transform_geom
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry import mapping, shape

from aerialseg.data.classes import ClassTable
from aerialseg.data.polygons import PolygonLayer, footprint
from aerialseg.files import OutputSet, check_apart
from aerialseg.inference.predict import NODATA
from aerialseg.inference.styles import class_codes, polygons_qml, tasks_qml
from aerialseg.inference.suggest import Suggestion
from aerialseg.inference.vector import MIN_AREA_PIXELS, store_styles
from aerialseg.inference.writers import write_text


def share_fields(classes: ClassTable) -> list[str]:
    """A field name per class for its predicted share: ``share_`` + the name, reduced to
    letters, digits and underscores, made unique."""
    names: list[str] = []
    for i, name in enumerate(classes.names):
        base = "share_" + (re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_") or str(i))
        field, n = base, i
        while field in names:  # "Road 2" after "Road" and "Road." is share_road_2_3
            field, n = f"{base}_{n}", n + 1
        names.append(field)
    return names


def _block_polygon(scene, window, crs):
    """The block's outline in ``crs`` (the scene's own where None or the same): its four
    corners, so that on a rotated grid it is the rotated square its pixels cover and the
    prelabel polygons inside it fill it."""
    outline = footprint(window, scene.transform)
    if crs is None or scene.crs is None or scene.crs == crs:
        return outline
    return shape(transform_geom(scene.crs, crs, mapping(outline)))


def area_path(out: Path) -> Path:
    """The labelled area written beside the tasks ``out``."""
    return out.with_name(out.stem + "_labelled_area.gpkg")


def classes_path(out: Path) -> Path:
    """The class table written beside the tasks ``out``: the model's, which the prelabel
    polygons are named in and the labels of the tasks are read with."""
    return out.with_name(out.stem + "_classes.json")


def check_outputs_apart(out: Path, inputs: list, labelled_area=None) -> None:
    """Refuse an ``out`` whose files would replace one of ``inputs`` (the label polygons,
    the scenes). The labelled area written may replace ``labelled_area``, the earlier one
    it holds: a round's area updated in place."""
    check_apart(out, [out, out.with_suffix(".qml"), classes_path(out)], [*inputs, labelled_area])
    check_apart(out, [area_path(out)], inputs)


def write_tasks(
    found: Suggestion, classes: ClassTable, out: Path, labelled: list[PolygonLayer]
) -> dict[str, Path]:
    """Write ``out`` (a .gpkg), its .qml, the class table and, for georeferenced scenes,
    the labelled area; all or none of them."""
    crs = found.scenes[0].crs
    fields = share_fields(classes)
    out.parent.mkdir(parents=True, exist_ok=True)
    outputs = OutputSet(out.parent, out.stem)
    written = {"tasks": out, "tasks_style": out.with_suffix(".qml"), "classes": classes_path(out)}
    tmp = outputs.temp(out, "tmp.gpkg")
    try:
        tasks_schema = {
            "geometry": "Polygon",
            "properties": {
                "rank": "int",
                "score": "float",
                "doubt": "float",
                "impurity": "float",
                "rarity": "float",
                "mean_confidence": "float",
                "scene": "str",
                "reason": "str",
                **dict.fromkeys(fields, "float"),
            },
        }
        wkt = crs.to_wkt() if crs is not None else None
        blocks = []
        with fiona.open(
            tmp, "w", driver="GPKG", layer="tasks", schema=tasks_schema, crs_wkt=wkt
        ) as sink:
            for task, why in zip(found.tasks, found.reasons, strict=True):
                scene = found.scenes[task.scene]
                polygon = _block_polygon(scene, task.window, crs)
                blocks.append(polygon)
                shares = {f: round(float(s), 4) for f, s in zip(fields, task.shares, strict=True)}
                sink.write(
                    {
                        "geometry": mapping(polygon),
                        "properties": {
                            "rank": task.rank,
                            "score": round(task.score, 4),
                            "doubt": round(task.doubt, 4),
                            "impurity": round(task.impurity, 4),
                            "rarity": round(task.rarity, 4),
                            "mean_confidence": round(100 * (1 - task.doubt), 1),
                            "scene": scene.name,
                            "reason": why,
                            **shares,
                        },
                    }
                )
        styles = [("tasks", "aerialseg tasks", tasks_qml(), "labelling tasks, by rank")]
        if any(scene.ids is not None for scene in found.scenes):
            _write_prelabel(found, classes, tmp, crs)
            styles.append(
                ("prelabel", "aerialseg classes", polygons_qml(classes), "the model's classes")
            )
        store_styles(tmp, styles)
        write_text(written["tasks_style"], tasks_qml(), outputs)
        write_text(written["classes"], json.dumps(classes.to_dict(), indent=2), outputs)
        area = area_path(out)
        if crs is not None:
            ground = shapely.union_all(
                [
                    _block_polygon(s, Window(0, 0, s.tally.width, s.tally.height), crs)
                    for s in found.scenes
                ]
            )
            _write_area(outputs.temp(area, "tmp.gpkg"), blocks, labelled, crs, ground)
            written["labelled_area"] = area
        else:  # an earlier run's, of other ground: not to be trained with these tasks
            outputs.drop(area)
    except BaseException:
        outputs.abort()
        raise
    outputs.commit()
    return written


def _write_prelabel(found: Suggestion, classes: ClassTable, gpkg: Path, crs) -> None:
    codes = class_codes(classes)
    schema = {
        "geometry": "Polygon",
        "properties": {"task": "int", "class_id": "int", "class": "str"},
    }
    wkt = crs.to_wkt() if crs is not None else None
    with fiona.open(gpkg, "w", driver="GPKG", layer="prelabel", schema=schema, crs_wkt=wkt) as sink:
        for task in found.tasks:
            scene = found.scenes[task.scene]
            assert scene.ids is not None  # every scene keeps its ids with prelabel
            rows, cols = task.window.toslices()
            ids = np.ascontiguousarray(scene.ids[rows, cols])
            at = window_transform(task.window, scene.transform)
            for geom, value in shapes(ids, mask=ids != NODATA, transform=at):
                polygon = shape(geom)
                if polygon.area < MIN_AREA_PIXELS * abs(at.determinant):  # rotated too
                    continue  # specks of a few pixels: noise to a labeller
                if crs is not None and scene.crs != crs:
                    polygon = shape(transform_geom(scene.crs, crs, mapping(polygon)))
                k = int(value)
                sink.write(
                    {
                        "geometry": mapping(polygon),
                        "properties": {
                            "task": task.rank,
                            "class_id": codes[k],
                            "class": classes.names[k],
                        },
                    }
                )


def _write_area(
    path: Path, blocks: list, labelled: list[PolygonLayer], crs, ground: shapely.Geometry
) -> None:
    """The union of the earlier labelled polygons and the task blocks, in ``crs``."""
    parts = list(blocks)
    for layer in labelled:
        parts.extend(_earlier_area(layer, crs, ground))
    union = shapely.union_all(parts)
    pieces = list(getattr(union, "geoms", [union]))
    schema = {"geometry": "Polygon", "properties": {"part": "int"}}
    with fiona.open(
        path, "w", driver="GPKG", layer="labelled_area", schema=schema, crs_wkt=crs.to_wkt()
    ) as sink:
        for i, piece in enumerate(p for p in pieces if p.geom_type == "Polygon"):
            sink.write({"geometry": mapping(piece), "properties": {"part": i}})


def _earlier_area(layer: PolygonLayer, crs, ground: shapely.Geometry) -> list:
    """An earlier labelled area in ``crs``: each polygon whole where ``crs`` holds it (it
    comes back from ``crs`` as it went: ground of scenes not in this run is kept), else
    only its part on ``ground``, the scenes' footprints (an area drawn round the globe,
    which a UTM zone cannot place)."""
    if layer.crs == crs:
        return list(layer.geometries)
    try:
        whole = layer.to_crs(crs)
        back = whole.to_crs(layer.crs).geometries
    except (CPLE_BaseError, ValueError):
        return list(layer.to_crs(crs, ground).geometries)
    held = [
        there.is_valid and returned.is_valid and _same(returned, drawn)
        for there, returned, drawn in zip(whole.geometries, back, layer.geometries, strict=True)
    ]
    kept = list(whole.geometries[held])
    if all(held):
        return kept
    rest = list(layer.geometries[np.logical_not(held)])
    others = PolygonLayer.of(layer.crs, rest, [1] * len(rest))
    return kept + list(others.to_crs(crs, ground).geometries)  # only those: cut, then moved


def _same(a: shapely.Geometry, b: shapely.Geometry) -> bool:
    """Whether ``a`` and ``b`` cover the same ground, to a hundredth of ``b``'s area."""
    return bool(a.symmetric_difference(b).area <= 0.01 * b.area)
