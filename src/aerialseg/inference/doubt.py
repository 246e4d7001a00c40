"""Which blocks are worth labelling next: tallied while a scene is predicted, then ranked.

Each scene is cut into square blocks. As the model predicts a scene band by band, every
block counts, over its valid pixels that no label covers yet, the sum of their doubt
(1 - the calibrated probability of the predicted class) and the pixels of each
predicted class. A block's parts, each in 0..1:

- **doubt**: the mean doubt of its pixels: where the model is unsure, a label teaches most.
- **impurity**: the entropy of its predicted class shares over log(classes): a block of
  several classes holds boundaries, where most errors are (RIPU, CVPR 2022, scores
  regions by this "region impurity" times uncertainty).
- **rarity**: its class shares weighted by how rare each class is among all candidate
  blocks (log of the commonest class's share over the class's own, scaled to 0..1): a
  class the model rarely predicts is one it has had few labels of.

The ``mixed`` strategy (the default) scores ``doubt * (1 + impurity/2 + rarity/2) / 2``:
doubt leads, and a mixed or rare block gets up to twice the score of a pure, common one
of the same doubt. Unlike RIPU's product, a pure block the model doubts still ranks (a
whole field it takes for water). ``doubt`` ranks by doubt alone, ``random`` by a seeded
draw (the baseline a labelling budget is compared with).

Blocks are then taken in score order, skipping any whose centre lies closer than
``min_distance`` to one already taken, so that twenty neighbours with the same doubt do
not all win. Hand-written: no library ranks map blocks for labelling (the R package sits
samples points by uncertainty only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from rasterio.windows import Window

from aerialseg.errors import AerialsegError

STRATEGIES = ("mixed", "doubt", "random")
MIN_USABLE = 0.5  # a block is a candidate if at least this share of it is unlabelled and valid
REASON_SHARE = 0.05  # a class counts in a block's reason from this share up


class SuggestError(AerialsegError, ValueError):
    """The suggestion cannot be made as asked (one line, for the user)."""


@dataclass
class BlockTally:
    """Per-block sums of one scene, filled band by band (``add``)."""

    height: int
    width: int
    block: int  # side in pixels
    num_classes: int
    rows: int = field(init=False)
    cols: int = field(init=False)
    pixels: np.ndarray = field(init=False)  # every pixel of the block
    usable: np.ndarray = field(init=False)  # valid and unlabelled
    doubt: np.ndarray = field(init=False)  # summed over usable pixels
    classes: np.ndarray = field(init=False)  # (blocks, classes) usable pixels per class

    def __post_init__(self) -> None:
        self.rows = -(-self.height // self.block)
        self.cols = -(-self.width // self.block)
        n = self.rows * self.cols
        self.pixels = np.zeros(n, np.int64)
        self.usable = np.zeros(n, np.int64)
        self.doubt = np.zeros(n, np.float64)
        self.classes = np.zeros((n, self.num_classes), np.int64)

    def add(
        self,
        row: int,
        ids: np.ndarray,
        confidence: np.ndarray,
        valid: np.ndarray,
        labelled: np.ndarray | None = None,
    ) -> None:
        """Count the band of rows ``row``.. of the scene, full width: class ``ids`` (h, w),
        ``confidence`` in percent, ``valid`` and ``labelled`` (h, w) bool masks."""
        h, w = ids.shape
        block_row = (row + np.arange(h)) // self.block
        block_col = np.arange(w) // self.block
        index = block_row[:, None] * self.cols + block_col[None, :]
        n = self.rows * self.cols
        self.pixels += np.bincount(index.ravel(), minlength=n)
        use = valid if labelled is None else valid & ~labelled
        at = index[use]
        self.usable += np.bincount(at, minlength=n)
        doubt = (100.0 - confidence[use].astype(np.float64)) / 100.0
        self.doubt += np.bincount(at, weights=doubt, minlength=n)
        flat = at * self.num_classes + ids[use].astype(np.int64)
        self.classes += np.bincount(flat, minlength=n * self.num_classes).reshape(n, -1)

    def window(self, index: int) -> Window:
        r, c = divmod(index, self.cols)
        top, left = r * self.block, c * self.block
        return Window(
            left, top, min(self.block, self.width - left), min(self.block, self.height - top)
        )

    def candidates(self) -> np.ndarray:
        """Block indices that are worth a task: at least half a full block, at least half
        of it valid and unlabelled."""
        full = self.block * self.block
        return np.flatnonzero(
            (self.pixels >= MIN_USABLE * full) & (self.usable >= MIN_USABLE * self.pixels)
        )


@dataclass
class Block:
    """A candidate block and its parts."""

    scene: int  # index of its scene
    index: int  # in its scene's tally
    window: Window
    centre: tuple[float, float]  # in its space's units (map units, or pixels)
    space: str  # blocks are apart by min_distance only within one space (a CRS or an image)
    reach: float  # half its side in its space's units: a nearer block is mostly its ground
    doubt: float
    shares: np.ndarray  # predicted class shares of its usable pixels
    impurity: float = 0.0
    rarity: float = 0.0
    score: float = 0.0
    rank: int = 0


def impurity(shares: np.ndarray) -> float:
    """Entropy of class shares (taken as parts of their sum) over log(classes): 0 for one
    class, or none, 1 for all equal."""
    p = shares[shares > 0]
    if len(shares) < 2 or len(p) == 0:
        return 0.0
    p = p / p.sum()
    return float(-(p * np.log(p)).sum() / math.log(len(shares)))


def class_rarity(blocks: list[Block], scored: np.ndarray | None = None) -> np.ndarray:
    """Per class, 0 (the commonest predicted class) .. 1 (the rarest), on a log scale;
    0 for a class not ``scored`` (a mask, not None: which are)."""
    totals = np.sum([b.shares for b in blocks], axis=0)
    if scored is not None:
        totals = np.where(scored, totals, 0.0)
    present = totals > 0
    rarity = np.zeros_like(totals, dtype=np.float64)
    if present.sum() < 2:
        return rarity
    logs = np.log(totals[present].max() / totals[present])
    rarity[present] = logs / logs.max() if logs.max() > 0 else 0.0
    return rarity


def score_blocks(
    blocks: list[Block], strategy: str, seed: int, scored: np.ndarray | None = None
) -> np.ndarray:
    """Fill each block's impurity, rarity and score, as ``strategy`` ranks them; returns
    the classes' rarity (``class_rarity``), which the reasons cite. Classes
    not ``scored`` (the Dubai set's Unlabeled) count for neither the mix nor rarity: the
    model is not judged on them, so labelling them is not worth a task (a review)."""
    if strategy not in STRATEGIES:
        raise SuggestError(f"--strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    rarity = class_rarity(blocks, scored)
    draws = np.random.default_rng(seed).random(len(blocks))
    for block, draw in zip(blocks, draws, strict=True):
        block.impurity = impurity(block.shares if scored is None else block.shares[scored])
        block.rarity = float(block.shares @ rarity)
        if strategy == "random":
            block.score = float(draw)
        elif strategy == "doubt":
            block.score = block.doubt
        else:
            block.score = block.doubt * (1 + block.impurity / 2 + block.rarity / 2) / 2
    return rarity


def select(blocks: list[Block], count: int, min_distance: Sequence[float]) -> list[Block]:
    """The ``count`` best blocks, each at least its scene's ``min_distance`` (by scene
    index, in its space's units) from those before it in its space; ranks from 1. Where the
    distance leaves fewer than ``count``, the nearest best blocks fill the rest, but never
    one of mostly the same ground as a block chosen (overlapping scenes): then fewer."""
    if count > len(blocks):
        raise SuggestError(
            f"--count {count}: only {len(blocks)} block(s) can be suggested (unlabelled,"
            " with data); ask for fewer, or choose a smaller --block-size"
        )
    # Ties go to the earlier scene and block: the same ranks on every run.
    order = sorted(blocks, key=lambda b: (-b.score, b.scene, b.index))
    chosen: list[Block] = []

    def taken(block: Block, apart: float) -> bool:
        """Nearer than ``apart`` to a chosen block, or on mostly its ground (nearer than
        either's reach: the block itself, or one of an overlapping scene)."""
        return any(_near(block, c, max(apart, block.reach, c.reach)) for c in chosen)

    for block in order:
        if len(chosen) < count and not taken(block, min_distance[block.scene]):
            chosen.append(block)
    for block in order:
        if len(chosen) < count and not taken(block, 0.0):
            chosen.append(block)
    for rank, block in enumerate(chosen, start=1):
        block.rank = rank
    return chosen


def _near(a: Block, b: Block, distance: float) -> bool:
    if a.space != b.space:
        return False
    return math.dist(a.centre, b.centre) < distance


def reason(block: Block, names: list[str], rarity: np.ndarray, strategy: str) -> str:
    """One line saying why the block ranks where it does."""
    if strategy == "random":
        return "drawn at random"
    parts = [f"mean confidence {100 * (1 - block.doubt):.0f}%"]
    present = [i for i in np.argsort(-block.shares) if block.shares[i] >= REASON_SHARE]
    if strategy == "mixed" and len(present) > 1:
        parts.append(f"{len(present)} classes ({', '.join(names[i] for i in present)})")
    rare = [i for i in present if rarity[i] >= 0.5]
    if strategy == "mixed" and rare:
        i = max(rare, key=lambda k: rarity[k])
        parts.append(f"rare class {names[i]} {block.shares[i]:.0%}")
    return "; ".join(parts)
