"""Class tables: mask colour or mask value -> contiguous class id, and display colours.

Masks come in two kinds. Colour-coded ones (the Dubai PNGs) are matched by ``mask_color``;
single-band ones holding a number per class (GeoTIFF label rasters, and the class rasters
``aerialseg predict`` writes) by ``mask_value``. A table may give both, or neither for
polygon labels, whose attribute names the class (data/polygons.py); one class may be the
``background``: what pixels no polygon covers are.

Pixels whose colour or value is in no class become IGNORE_INDEX, which the loss and metrics
skip. Those listed under ``ignore_colors`` / ``ignore_values`` are known to carry no label
(black borders in the Dubai masks, a nodata value); any other unmatched one counts as
*unknown*, and too much of it means the table does not fit the masks.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import yaml

from aerialseg.errors import ClassTableError, parse_reason, shown
from aerialseg.files import read_bounded
from aerialseg.yamltext import load_json, load_yaml

IGNORE_INDEX = 255
# the longest class name: a legend line, a CSV cell, a polygon attribute
MAX_NAME_LENGTH = 100


def parse_color(value: str | list[int] | tuple[int, ...]) -> tuple[int, int, int]:
    """Accept ``"#RRGGBB"`` or ``[r, g, b]``."""
    if isinstance(value, str):
        text = value.strip().lstrip("#")
        if len(text) != 6:
            raise ClassTableError(f"colour {shown(value)} is not of the form #RRGGBB")
        try:
            return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
        except ValueError:
            raise ClassTableError(f"colour {shown(value)} is not of the form #RRGGBB") from None
    channels = isinstance(value, list | tuple) and len(value) == 3
    if channels and all(type(c) is int and 0 <= c <= 255 for c in value):  # not True, 1.0
        return (value[0], value[1], value[2])
    raise ClassTableError(f"colour {shown(value)} is neither #RRGGBB nor [r, g, b] in 0..255")


def to_hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


# Display colours for classes a table gives none for (value-coded masks have no colours).
FALLBACK_COLORS = (
    "#E6194B", "#3CB44B", "#FFE119", "#4363D8", "#F58231", "#911EB4", "#46F0F0", "#F032E6",
    "#BCF60C", "#FABEBE", "#008080", "#E6BEFF", "#9A6324", "#FFFAC8", "#800000", "#AAFFC3",
)  # fmt: skip


@dataclass(frozen=True)
class SegClass:
    name: str
    mask_color: str | None  # colour-coded masks: this class's colour
    display_color: str
    # False for classes with no visual meaning (Unlabeled): left out of the headline mIoU.
    scored: bool = True
    mask_value: int | None = None  # single-band masks: this class's value
    # polygon labels: the class of pixels no polygon covers, inside the labelled area
    background: bool = False


@dataclass(frozen=True)
class ClassTable:
    classes: tuple[SegClass, ...]
    ignore_colors: tuple[str, ...] = field(default_factory=tuple)
    ignore_values: tuple[int, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.classes:
            raise ClassTableError("a class table needs at least one class")
        if len(self.classes) >= IGNORE_INDEX:
            raise ClassTableError(f"at most {IGNORE_INDEX - 1} classes are supported")
        if sum(c.background for c in self.classes) > 1:
            raise ClassTableError("at most one class can be the background")
        twice = _first_twice(self.classes, lambda c: name_key(c.name))
        if twice:  # names are matched by name_key (polygon labels, another model's table)
            raise ClassTableError(
                f"classes {twice[0].name!r} and {twice[1].name!r} have the same name (names"
                " are matched in any case, spacing and Unicode form); rename or merge one"
            )
        for what, key in (
            ("mask_color", lambda c: c.mask_color and to_hex(parse_color(c.mask_color))),
            ("mask_value", lambda c: c.mask_value),
        ):
            twice = _first_twice(self.classes, key)
            if twice:
                raise ClassTableError(
                    f"classes {twice[0].name!r} and {twice[1].name!r} both have {what}"
                    f" {key(twice[0])}; give each class its own"
                )
        ignored = {parse_color(c) for c in self.ignore_colors}
        both = [c for c in self.classes if c.mask_color and parse_color(c.mask_color) in ignored]
        if both:
            raise ClassTableError(
                f"class {both[0].name!r}'s mask_color {both[0].mask_color} is an ignore colour too"
            )
        both = [c for c in self.classes if c.mask_value in self.ignore_values]
        if both:
            raise ClassTableError(
                f"class {both[0].name!r}'s mask_value {both[0].mask_value} is an ignore value too"
            )

    @property
    def by_color(self) -> bool:
        """Every class has a mask colour: colour-coded masks can be read."""
        return all(c.mask_color is not None for c in self.classes)

    @property
    def values(self) -> tuple[int, ...] | None:
        """The value of each class (in id order) in a single-band class raster: each one's
        mask_value, and where the background class alone has none (a table for polygon
        labels: the background is where no polygon is), the smallest value from 0 that no
        class or ignore value takes. None where other classes have none: rasters hold ids.
        A review: predict wrote ids for such a table, so 1 was Road in the predictions and
        Building in the user's own codes."""
        missing = [c for c in self.classes if c.mask_value is None]
        if missing and missing != [c for c in self.classes if c.background]:
            return None
        taken = {c.mask_value for c in self.classes} | set(self.ignore_values)
        free = next(v for v in range(len(taken) + 1) if v not in taken)
        return tuple(free if c.mask_value is None else c.mask_value for c in self.classes)

    @property
    def by_value(self) -> bool:
        """Every class has a value (``values``): single-band masks can be read."""
        return self.values is not None

    def raster_coding(self) -> tuple[np.ndarray, int, str]:
        """How class rasters store classes: the value written per class id (a lookup table
        of 256, IGNORE_INDEX to nodata), the nodata value and the type. Tables of mask
        values write those values (``values``), so predictions read like the labels they
        learnt from; others write the class ids."""
        values = self.values
        wide = values is not None and max(values) >= 255
        nodata, dtype = (65535, "uint16") if wide else (255, "uint8")
        lut = np.arange(256, dtype=np.uint16)
        if values is not None:
            lut[: len(values)] = values
        lut[IGNORE_INDEX] = nodata
        return lut, nodata, dtype

    @property
    def background_id(self) -> int | None:
        """The id of the background class, None without one."""
        return next((i for i, c in enumerate(self.classes) if c.background), None)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def id_of(self, name: str) -> int | None:
        """The id of the class ``name`` names (as ``name_key`` compares names); None where
        no class has that name."""
        return next(
            (i for i, c in enumerate(self.classes) if name_key(c.name) == name_key(name)), None
        )

    def ids_in(self, other: ClassTable) -> np.ndarray:
        """(256,) uint8: ``other``'s id of each of this table's class ids, matched by name;
        IGNORE_INDEX for a class ``other`` lacks, and past the classes."""
        lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        for i, name in enumerate(self.names):
            found = other.id_of(name)
            lut[i] = IGNORE_INDEX if found is None else found
        return lut

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_scored(self) -> int:
        """The classes the headline mIoU averages (``scored``)."""
        return sum(c.scored for c in self.classes)

    def display_palette(self) -> np.ndarray:
        """(num_classes, 3) uint8 display colours."""
        return np.array([parse_color(c.display_color) for c in self.classes], dtype=np.uint8)

    def to_dict(self) -> dict:
        return {
            "classes": [asdict(c) for c in self.classes],
            "ignore_colors": list(self.ignore_colors),
            "ignore_values": list(self.ignore_values),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ClassTable:
        entries = data.get("classes") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ClassTableError(
                "a class table is a mapping whose 'classes' is a list of entries, each with"
                " 'name' and 'mask_color' (colour-coded masks) or 'mask_value' (single-band"
                " masks)"
            )
        # absent or null: none; any other value not a list is refused, 0 and "" too (a
        # review: 'ignore_values: 0' was read as none, and every mask of 0s then failed)
        listed = {
            key: [] if data.get(key) is None else data[key]
            for key in ("ignore_colors", "ignore_values")
        }
        for key, value in listed.items():
            if not isinstance(value, list):
                raise ClassTableError(f"{key}: {shown(value)} is not a list; give [...]")
        try:
            classes = tuple(_class_from_dict(e, i) for i, e in enumerate(data["classes"]))
            ignore = tuple(to_hex(parse_color(c)) for c in listed["ignore_colors"])
            ignore_values = tuple(_mask_value(v, "ignore_values") for v in listed["ignore_values"])
        except (KeyError, TypeError) as err:
            raise ClassTableError(
                f"class table entry is missing {err}; each class needs 'name' and 'mask_color'"
                " (colour-coded masks) or 'mask_value' (single-band masks)"
            ) from None
        return cls(classes=classes, ignore_colors=ignore, ignore_values=ignore_values)

    @classmethod
    def from_file(cls, path: str | Path) -> ClassTable:
        path = Path(path)
        try:
            text = read_bounded(path).decode("utf-8-sig")
        except OSError as err:
            raise ClassTableError(f"cannot read class table {path}: {err.strerror}") from None
        except UnicodeDecodeError:
            raise ClassTableError(f"class table {path} is not UTF-8 text") from None
        try:
            data = load_json(text) if path.suffix == ".json" else load_yaml(text)
        except (ValueError, yaml.YAMLError) as err:  # json's ValueError: 4,300-digit ints
            raise ClassTableError(
                f"class table {path} is not valid JSON/YAML: {parse_reason(err)}"
            ) from None
        except RecursionError:
            raise ClassTableError(f"class table {path} is nested too deep") from None
        if not isinstance(data, dict):
            raise ClassTableError(f"class table {path} must be a mapping with a 'classes' list")
        try:
            table = cls.from_dict(data)
            _check_keys(data, TABLE_KEYS, "the table")
            for entry in data["classes"]:
                _check_keys(entry, CLASS_KEYS, f"class {entry['name']!r}")
        except ClassTableError as err:
            raise ClassTableError(f"class table {path}: {err}") from None
        return table


TABLE_KEYS = ("classes", "ignore_colors", "ignore_values")
CLASS_KEYS = tuple(f.name for f in fields(SegClass))


def _check_keys(entry: dict, known: tuple[str, ...], where: str) -> None:
    """Refuse a key a table file may not have: a misspelt one (score, ignore_value) was
    left unread, and the table meant something else (a review)."""
    for key in entry:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ClassTableError(
                f"{where} has the key {shown(key)}, which is not one: {hint}the keys are"
                f" {', '.join(known)}"
            )


def name_key(name: str) -> str:
    """A class name as names are compared wherever two name the same class (a polygon's
    label, another model's or a dataset's table): in any case, with any spacing (runs of
    spaces, tabs or no-break spaces are one space; none around), in any Unicode composition
    ('a' + a combining accent is 'à')."""
    return " ".join(unicodedata.normalize("NFC", name).split()).casefold()


def _first_twice(classes: tuple[SegClass, ...], key) -> tuple[SegClass, SegClass] | None:
    """The first two classes whose ``key`` is the same (a key of None counts for none)."""
    seen: dict = {}
    for entry in classes:
        k = key(entry)
        if k is not None and k in seen:
            return seen[k], entry
        seen.setdefault(k, entry)
    return None


def _mask_value(value, what: str) -> int:
    # 65535 is kept for nodata in class rasters of 16-bit values
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 65535:
        raise ClassTableError(f"{what}: {shown(value)} is not a whole number from 0 to 65534")
    return value


def _class_name(name, index: int) -> str:
    """A class's name: text a map legend, a CSV row and a polygon attribute can carry; a
    number (a land-cover code such as 11) is its digits."""
    if isinstance(name, int) and not isinstance(name, bool):
        name = str(name)
    if not isinstance(name, str) or not all(map(_name_character, name)) or not _visible(name):
        raise ClassTableError(
            f"class {index + 1}: name {shown(name)} is not a name; give each class a name in words"
            " (letters, digits, spaces), e.g. 'Building'"
        )
    if len(name) > MAX_NAME_LENGTH:  # a legend's line; 3,000 made a 1.5-gigapixel plot
        raise ClassTableError(
            f"class {index + 1}: name {shown(name)} is {len(name):,} characters long; a class"
            f" name has at most {MAX_NAME_LENGTH}"
        )
    return name


def _visible(name: str) -> bool:
    """Whether ``name`` shows a character: not only spaces and joiners."""
    return any(ch.isprintable() and not ch.isspace() for ch in name)


def _name_character(ch: str) -> bool:
    """Printable, or a joiner that writing needs (Persian's ZWNJ, an emoji's ZWJ, a flag's
    tags); not a control, line break or direction override."""
    return ch.isprintable() or ch in "\u200c\u200d" or "\U000e0020" <= ch <= "\U000e007f"


def _flag(entry: dict, key: str, default: bool) -> bool:
    """A yes/no setting of a class: a YAML or JSON boolean, or 1 or 0 ("false" in quotes
    is text, which bool() would read as yes)."""
    value = entry.get(key, default)
    if not isinstance(value, bool) and not (isinstance(value, int) and value in (0, 1)):
        raise ClassTableError(
            f"class {shown(entry['name'])}: {key}: {shown(value)} is not true or false"
        )
    return bool(value)


def _class_from_dict(entry: dict, index: int) -> SegClass:
    name = _class_name(entry["name"], index)
    colour = entry.get("mask_color")
    colour = None if colour is None else to_hex(parse_color(colour))
    value = entry.get("mask_value")
    display = entry.get("display_color", colour or FALLBACK_COLORS[index % len(FALLBACK_COLORS)])
    return SegClass(
        name=name,
        mask_color=colour,
        display_color=to_hex(parse_color(display)),
        scored=_flag(entry, "scored", True),
        mask_value=None if value is None else _mask_value(value, f"class {name!r}"),
        background=_flag(entry, "background", False),
    )


# The colours the Dubai masks really use (measured; classes.json in the archive is wrong).
# Display colours are the ones classes.json intended, which read better on a map.
DUBAI_CLASSES = ClassTable(
    classes=(
        SegClass("Building", "#3C1098", "#D0021B"),
        SegClass("Land", "#8429F6", "#F5A623"),
        SegClass("Road", "#6EC1E4", "#DE597F"),
        SegClass("Vegetation", "#FEDD3A", "#417505"),
        SegClass("Water", "#E2A929", "#50E3C2"),
        SegClass("Unlabeled", "#9B9B9B", "#9B9B9B", scored=False),
    ),
    ignore_colors=("#000000",),
)


def _pack(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) uint32 with one integer per colour."""
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


@dataclass
class EncodedMask:
    ids: np.ndarray  # (H, W) uint8 class ids, IGNORE_INDEX where no class
    unknown: Counter  # packed colour (or value) -> pixel count, for those in no list
    ignored: int  # pixels of a declared ignore colour (or value)
    by_value: bool = False  # read from a single-band mask of values, not colours

    def describe(self, code: int) -> str:
        """An unknown code as the user wrote it in the mask: a value or #RRGGBB."""
        if self.by_value and code == BEYOND_INT:
            return f"a value of {BEYOND_INT:.0e} or more (an undeclared fill value?)"
        return str(code) if self.by_value else unpack_hex(code)


# The one code of values too large for a class (an undeclared fill value such as float32's
# 3.4e38): mask_values are small, and int64 holds no larger values.
BEYOND_INT = 2**62


def encode_mask(mask: np.ndarray, table: ClassTable, name: str = "mask") -> EncodedMask:
    """Map an (H, W, 3) colour mask or an (H, W) mask of class values to class ids. Masked
    pixels of a masked array (a label raster's declared nodata) are ignored. ``name``: the
    mask's file, for errors."""
    if mask.ndim == 2:
        if not table.by_value:
            raise ClassTableError(
                f"{name}: a single-band mask (a value per class) but the class table gives"
                " colours: pass one whose classes have a mask_value with --classes"
            )
        data, nodata = np.ma.getdata(mask), np.ma.getmaskarray(mask)
        if data.dtype.kind == "f":
            # a class raster holds whole numbers: a continuous one (probabilities, NDVI)
            # or one resampled bilinearly would be truncated into classes
            fraction = ~nodata & ~(np.isfinite(data) & (data == np.floor(data)))
            if fraction.any():
                example = data[fraction][0]
                # the count, but of the first pixel alone (the header check's): "1 of 1"
                count = f"; {int(fraction.sum()):,} of the {fraction.size:,} pixels read"
                raise ClassTableError(
                    f"{name}: holds values that are not whole numbers (e.g. {example:g}"
                    f"{count if fraction.size > 1 else ''}); a class raster holds each"
                    " class's mask_value: is this a continuous raster, or one resampled"
                    " bilinearly?"
                )
        # values past int64 (float32's 3.4e38, an undeclared fill value; uint64 past
        # 2**63) would wrap: they are one unknown code of their own
        wide = data.dtype.kind == "f" or data.dtype == np.uint64
        beyond = ~nodata & (np.abs(data) >= BEYOND_INT) if wide else np.zeros_like(nodata)
        codes = np.where(beyond | nodata, 0, data).astype(np.int64)
        codes[beyond] = BEYOND_INT
        class_codes = {value: i for i, value in enumerate(table.values or ())}
        ignore_codes = set(table.ignore_values)
    else:
        if not table.by_color:
            raise ClassTableError(
                f"{name}: a colour-coded mask but the class table gives values: pass one"
                " whose classes have a mask_color with --classes"
            )
        codes = _pack(np.ma.getdata(mask))
        nodata = np.asarray(np.ma.getmaskarray(mask).any(axis=-1))  # a raster's (most: none)
        class_codes = {
            int(_pack(np.array(parse_color(c.mask_color)))): i
            for i, c in enumerate(table.classes)
            if c.mask_color is not None  # all of them: by_color
        }
        ignore_codes = {int(_pack(np.array(parse_color(c)))) for c in table.ignore_colors}
    # Declared nodata is ignored apart from the codes: no code a mask holds stands for it
    # (-1 did, and a signed raster's undeclared -1 was taken for nodata).
    keep = ~nodata.ravel()
    found, inverse = np.unique(codes.ravel()[keep], return_inverse=True)
    lut = np.full(len(found), IGNORE_INDEX, dtype=np.uint8)
    counts = np.bincount(inverse, minlength=len(found))
    unknown: Counter = Counter()
    ignored = int(nodata.sum())
    for j, code in enumerate(found.tolist()):
        if code in class_codes:
            lut[j] = class_codes[code]
        elif code in ignore_codes:
            ignored += int(counts[j])
        else:
            unknown[code] = int(counts[j])
    ids = np.full(codes.size, IGNORE_INDEX, dtype=np.uint8)
    ids[keep] = lut[inverse]
    return EncodedMask(ids.reshape(codes.shape), unknown, ignored, mask.ndim == 2)


def unpack_hex(code: int) -> str:
    return to_hex(((code >> 16) & 255, (code >> 8) & 255, code & 255))


def check_unknown_share(
    encoded: EncodedMask, name: str, max_share: float, flag: str = "--max-unknown"
) -> None:
    """Raise if more than ``max_share`` of a mask's pixels match no listed colour or value.
    ``flag``: how the user sets the limit, for the message (``max_unknown=`` in training)."""
    total = encoded.ids.size
    n_unknown = sum(encoded.unknown.values())
    if total and n_unknown / total > max_share:
        top = ", ".join(
            f"{encoded.describe(code)} ({count / total:.1%})"
            for code, count in encoded.unknown.most_common(3)
        )
        kind = "value" if encoded.by_value else "colour"
        fix = "the class table does not fit these masks: pass the right one with --classes"
        if name.lower().endswith((".jpg", ".jpeg")):  # lossy: its colours drift off the table
            fix = "JPEG compression changes a mask's colours and values: save masks as PNG or TIFF"
        raise ClassTableError(
            f"{name}: {n_unknown / total:.1%} of pixels match no class {kind} (most common:"
            f" {top}); {fix} (limit {max_share:.0%}, set by {flag})"
        )
