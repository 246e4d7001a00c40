"""Class tables: mask colour -> contiguous class id, and display colours.

Pixels whose colour is in no class become IGNORE_INDEX, which the loss and metrics skip.
Colours listed under ``ignore_colors`` are known to carry no label (black borders in the
Dubai masks); any other unmatched colour counts as *unknown*, and too much of it means the
table does not fit the masks.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from aerialseg.errors import ClassTableError

IGNORE_INDEX = 255


def parse_color(value: str | list[int] | tuple[int, ...]) -> tuple[int, int, int]:
    """Accept ``"#RRGGBB"`` or ``[r, g, b]``."""
    if isinstance(value, str):
        text = value.strip().lstrip("#")
        if len(text) != 6:
            raise ClassTableError(f"colour {value!r} is not of the form #RRGGBB")
        try:
            return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
        except ValueError:
            raise ClassTableError(f"colour {value!r} is not of the form #RRGGBB") from None
    if len(value) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in value):
        return (value[0], value[1], value[2])
    raise ClassTableError(f"colour {value!r} is neither #RRGGBB nor [r, g, b] in 0..255")


def to_hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


@dataclass(frozen=True)
class SegClass:
    name: str
    mask_color: str
    display_color: str
    # False for classes with no visual meaning (Unlabeled): left out of the headline mIoU.
    scored: bool = True


@dataclass(frozen=True)
class ClassTable:
    classes: tuple[SegClass, ...]
    ignore_colors: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.classes:
            raise ClassTableError("a class table needs at least one class")
        if len(self.classes) >= IGNORE_INDEX:
            raise ClassTableError(f"at most {IGNORE_INDEX - 1} classes are supported")
        colours = [parse_color(c.mask_color) for c in self.classes]
        if len(set(colours)) != len(colours):
            raise ClassTableError("two classes share a mask colour")
        if set(colours) & {parse_color(c) for c in self.ignore_colors}:
            raise ClassTableError("a colour is both a class colour and an ignore colour")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def display_palette(self) -> np.ndarray:
        """(num_classes, 3) uint8 display colours."""
        return np.array([parse_color(c.display_color) for c in self.classes], dtype=np.uint8)

    def to_dict(self) -> dict:
        return {
            "classes": [asdict(c) for c in self.classes],
            "ignore_colors": list(self.ignore_colors),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ClassTable:
        try:
            entries = data["classes"]
            classes = tuple(
                SegClass(
                    name=str(e["name"]),
                    mask_color=to_hex(parse_color(e["mask_color"])),
                    display_color=to_hex(parse_color(e.get("display_color", e["mask_color"]))),
                    scored=bool(e.get("scored", True)),
                )
                for e in entries
            )
        except (KeyError, TypeError) as err:
            raise ClassTableError(
                f"class table entry is missing {err}; each class needs 'name' and 'mask_color'"
            ) from None
        ignore = tuple(to_hex(parse_color(c)) for c in data.get("ignore_colors", []))
        return cls(classes=classes, ignore_colors=ignore)

    @classmethod
    def from_file(cls, path: str | Path) -> ClassTable:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise ClassTableError(f"cannot read class table {path}: {err.strerror}") from None
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise ClassTableError(f"class table {path} is not valid JSON/YAML: {err}") from None
        if not isinstance(data, dict):
            raise ClassTableError(f"class table {path} must be a mapping with a 'classes' list")
        return cls.from_dict(data)


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
    unknown: Counter  # packed colour -> pixel count, for colours in no list
    ignored: int  # pixels of a declared ignore colour


def encode_mask(rgb: np.ndarray, table: ClassTable) -> EncodedMask:
    """Map an (H, W, 3) colour mask to class ids."""
    packed = _pack(rgb)
    colours, inverse = np.unique(packed.ravel(), return_inverse=True)
    lut = np.full(len(colours), IGNORE_INDEX, dtype=np.uint8)
    class_codes = {
        int(_pack(np.array(parse_color(c.mask_color)))): i for i, c in enumerate(table.classes)
    }
    ignore_codes = {int(_pack(np.array(parse_color(c)))) for c in table.ignore_colors}
    counts = np.bincount(inverse, minlength=len(colours))
    unknown: Counter = Counter()
    ignored = 0
    for j, code in enumerate(colours.tolist()):
        if code in class_codes:
            lut[j] = class_codes[code]
        elif code in ignore_codes:
            ignored += int(counts[j])
        else:
            unknown[code] = int(counts[j])
    return EncodedMask(lut[inverse].reshape(packed.shape), unknown, ignored)


def unpack_hex(code: int) -> str:
    return to_hex(((code >> 16) & 255, (code >> 8) & 255, code & 255))


def check_unknown_share(encoded: EncodedMask, name: str, max_share: float) -> None:
    """Raise if more than ``max_share`` of a mask's pixels match no listed colour."""
    total = encoded.ids.size
    n_unknown = sum(encoded.unknown.values())
    if total and n_unknown / total > max_share:
        top = ", ".join(
            f"{unpack_hex(code)} ({count / total:.1%})"
            for code, count in encoded.unknown.most_common(3)
        )
        raise ClassTableError(
            f"{name}: {n_unknown / total:.1%} of pixels match no class colour (most common: {top});"
            f" the class table does not fit these masks: pass the right one with --classes"
            f" (limit {max_share:.0%}, set by --max-unknown)"
        )
