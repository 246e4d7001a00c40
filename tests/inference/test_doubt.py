"""The ranking arithmetic of suggest (inference/doubt.py), on blocks made by hand."""

import math

import numpy as np
import pytest
from rasterio.windows import Window

from aerialseg.inference.doubt import (
    Block,
    BlockTally,
    class_rarity,
    impurity,
    reason,
    score_blocks,
    select,
)


def block(shares, doubt=0.5, centre=(0.0, 0.0), space="a", index=0, scene=0, reach=0.5) -> Block:
    window = Window(0, 0, 1, 1)
    return Block(scene, index, window, centre, space, reach, doubt, np.asarray(shares, float))


def test_impurity_is_the_entropy_of_the_shares_over_log_classes():
    assert impurity(np.array([1.0, 0, 0])) == 0
    assert impurity(np.array([0.5, 0.5])) == pytest.approx(1)
    assert impurity(np.array([0.25] * 4)) == pytest.approx(1)
    assert impurity(np.array([0.5, 0.5, 0, 0])) == pytest.approx(0.5)
    assert impurity(np.array([1.0])) == 0  # a table of one class
    # shares of the scored classes only: parts of their own sum; none at all is pure
    assert impurity(np.array([0.2, 0.2, 0.0])) == pytest.approx(math.log(2) / math.log(3))
    assert impurity(np.array([0.0, 0.0])) == 0


def test_rarity_runs_from_the_commonest_class_to_the_rarest_on_a_log_scale():
    blocks = [block([0.5, 0.25, 0.125, 0]), block([0.5, 0.25, 0.125, 0])]
    assert class_rarity(blocks) == pytest.approx([0, 0.5, 1, 0])
    assert class_rarity([block([0.6, 0.4, 0])]) == pytest.approx([0, 1, 0])
    assert list(class_rarity([block([1.0, 0, 0])])) == [0, 0, 0]
    assert list(class_rarity([block([0.5, 0.5])])) == [0, 0]  # equally common


def test_each_strategy_scores_as_documented():
    blocks = [block([0.5, 0.25, 0.25], doubt=0.4), block([1.0, 0, 0], doubt=0.6)]
    rarity = score_blocks(blocks, "mixed", seed=0)  # the rarity the reasons cite
    mixed, pure = blocks
    assert pure.impurity == 0 and pure.rarity == 0 and pure.score == pytest.approx(0.3)
    assert mixed.impurity == pytest.approx(1.5 * math.log(2) / math.log(3))
    assert (rarity == class_rarity(blocks)).all()
    assert mixed.rarity == pytest.approx(0.25 * rarity[1] + 0.25 * rarity[2])
    expected = 0.4 * (1 + mixed.impurity / 2 + mixed.rarity / 2) / 2
    assert mixed.score == pytest.approx(expected)
    score_blocks(blocks, "doubt", seed=0)
    assert [b.score for b in blocks] == [0.4, 0.6]
    score_blocks(blocks, "random", seed=5)
    assert [b.score for b in blocks] == list(np.random.default_rng(5).random(2))
    with pytest.raises(ValueError, match="--strategy 'x': choose one of mixed, doubt, random"):
        score_blocks(blocks, "x", seed=0)


def test_spacing_holds_within_a_space_and_the_rest_fill_up_in_score_order():
    blocks = [
        block([1.0], centre=(0, 0), index=0),
        block([1.0], centre=(1, 0), index=1),
        block([1.0], centre=(2, 0), index=2),
        block([1.0], centre=(0, 0), space="b", index=3),
    ]
    for b, score in zip(blocks, (0.9, 0.8, 0.7, 0.6), strict=True):
        b.score = score
    # 2 apart is far enough; 1 is not; another space is never near
    assert [b.index for b in select(blocks, 3, [2.0])] == [0, 2, 3]
    # fewer far-apart blocks than asked: the best of the others fill the rest
    assert [b.index for b in select(blocks, 4, [5.0])] == [0, 3, 1, 2]
    assert [b.rank for b in select(blocks, 4, [5.0])] == [1, 2, 3, 4]
    with pytest.raises(ValueError) as err:
        select(blocks, 5, [0.0])
    assert str(err.value) == (
        "--count 5: only 4 block(s) can be suggested (unlabelled, with data); ask for fewer,"
        " or choose a smaller --block-size"
    )


def test_overlapping_scenes_never_give_the_same_ground_twice():
    """A review: a scene and a copy of it (overlapping tiles) had 9 of 20 tasks listed
    twice, under two scene names, when the spacing left the list to be filled up."""
    blocks = [
        block([1.0], centre=(x, 0), index=x, scene=scene, reach=32.0)
        for scene in (0, 1)
        for x in (0, 64, 128)
    ]
    for b in blocks:
        b.score = 1.0 - b.index / 1000 - b.scene / 10_000
    chosen = select(blocks, 6, [1000.0, 1000.0])
    assert [(b.scene, b.index) for b in chosen] == [(0, 0), (0, 64), (0, 128)]
    # half a block over: mostly the same ground too; a block away is other ground
    shifted = [block([1.0], centre=(x, 0), index=i, reach=32.0) for i, x in enumerate((0, 31, 64))]
    for b in shifted:
        b.score = 1.0 - b.index / 10
    assert [b.index for b in select(shifted, 3, [1000.0])] == [0, 2]
    # scenes of other pixel sizes: a block on a coarse block's ground is taken, whichever
    # comes first (their reaches differ)
    for coarse_first in (True, False):
        coarse = block([1.0], centre=(0, 0), index=0, scene=0, reach=64.0)
        fine = block([1.0], centre=(40, 0), index=1, scene=1, reach=16.0)
        coarse.score, fine.score = (0.9, 0.8) if coarse_first else (0.8, 0.9)
        assert len(select([coarse, fine], 2, [1000.0, 1000.0])) == 1
        assert len(select([coarse, fine], 2, [0.0, 0.0])) == 1
    # a review: without spacing (--min-distance 0) the copy's blocks came back too
    assert [(b.scene, b.index) for b in select(blocks, 6, [0.0, 0.0])] == [
        (0, 0),
        (0, 64),
        (0, 128),
    ]


def test_the_reason_names_confidence_classes_and_the_rarest_class():
    names = ["Land", "Road", "Water"]
    rarity = np.array([0.0, 0.5, 1.0])
    mixed = block([0.55, 0.4, 0.05], doubt=0.35)
    assert reason(mixed, names, rarity, "mixed") == (
        "mean confidence 65%; 3 classes (Land, Road, Water); rare class Water 5%"
    )
    assert reason(block([0.6, 0.4, 0]), names, rarity, "mixed") == (
        "mean confidence 50%; 2 classes (Land, Road); rare class Road 40%"
    )
    assert reason(block([1.0, 0, 0], doubt=0.2), names, rarity, "mixed") == ("mean confidence 80%")
    assert reason(mixed, names, rarity, "doubt") == "mean confidence 65%"
    assert reason(mixed, names, rarity, "random") == "drawn at random"
    below = block([0.96, 0.04, 0], doubt=0.5)
    assert reason(below, names, np.array([0.0, 0.4, 1.0]), "mixed") == "mean confidence 50%"
    # the rarest of the rare classes is named, wherever it stands in the table
    assert reason(mixed, names, np.array([0.0, 1.0, 0.6]), "mixed").endswith("rare class Road 40%")


def test_a_tally_counts_blocks_and_their_edges():
    tally = BlockTally(height=70, width=100, block=64, num_classes=2)
    assert (tally.rows, tally.cols) == (2, 2)
    assert tally.window(1) == Window(64, 0, 36, 64)
    assert tally.window(2) == Window(0, 64, 64, 6)
    ids = np.zeros((70, 100), np.uint8)
    ids[:, 32:] = 1
    confidence = np.full((70, 100), 60, np.uint8)
    valid = np.ones((70, 100), bool)
    labelled = np.zeros((70, 100), bool)
    labelled[:32, :] = True  # the upper half of the first row of blocks is labelled
    tally.add(0, ids[:40], confidence[:40], valid[:40], labelled[:40])
    tally.add(40, ids[40:], confidence[40:], valid[40:], labelled[40:])
    assert list(tally.pixels) == [64 * 64, 36 * 64, 64 * 6, 36 * 6]
    assert list(tally.usable) == [32 * 64, 32 * 36, 64 * 6, 36 * 6]
    assert tally.doubt[0] == pytest.approx(0.4 * 32 * 64)
    assert list(tally.classes[0]) == [32 * 32, 32 * 32]
    # half of a full block and half of it usable: still a candidate; a sliver is not
    assert list(tally.candidates()) == [0, 1]


def test_a_candidate_is_at_least_half_a_block_at_least_half_of_it_unlabelled():
    tally = BlockTally(height=64, width=96, block=64, num_classes=2)
    labelled = np.zeros((64, 96), bool)
    labelled[:48, :64] = True  # three quarters of the full block: a quarter usable
    ones = np.ones((64, 96), np.uint8)
    tally.add(0, ones, ones * 50, ones.astype(bool), labelled)
    # the full block is mostly labelled already; the edge block, exactly half a block
    # wide and all unlabelled, is one
    assert list(tally.candidates()) == [1]


def test_each_scene_is_spaced_by_its_own_distance():
    """Scenes in metres and in degrees were spaced by the first scene's distance: 32 m,
    in degrees, spans a whole scene, and in the other order the spacing vanished."""
    metres = [block([1.0], centre=(10.0 * k, 0), space="utm", index=k, reach=5.0) for k in range(4)]
    degrees = [
        block([1.0], centre=(0.0001 * k, 0), space="wgs84", index=k, scene=1, reach=0.00005)
        for k in range(4)
    ]
    for b in metres + degrees:
        b.score = 1.0 - b.index / 10
    chosen = select(metres + degrees, 4, [15.0, 0.00015])
    assert sorted((b.scene, b.index) for b in chosen) == [(0, 0), (0, 2), (1, 0), (1, 2)]
    # filling up past the spacing, blocks of degrees are apart by their own reach (0.00005),
    # not by a unit's worth of degrees
    chosen = select(degrees, 4, [0.0, 1.0])
    assert sorted(b.index for b in chosen) == [0, 1, 2, 3]


def test_classes_not_scored_make_no_block_mixed_or_rare():
    """A review: the top task was 'rare class Unlabeled 37%', a class the model is not
    scored on. Land with Unlabeled is as pure as Land alone, and Unlabeled is never rare;
    without the mask every class counts, as before."""
    scored = np.array([True, True, False])  # Land, Road, Unlabeled
    blocks = [block([0.63, 0.0, 0.37], index=0), block([1.0, 0.0, 0.0], index=1)]
    blocks += [block([0.5, 0.5, 0.0], index=2), block([0.9, 0.1, 0.0], index=3)]
    score_blocks(blocks, "mixed", seed=0, scored=scored)
    assert blocks[0].impurity == 0.0 and blocks[0].rarity == 0.0
    assert blocks[0].score == blocks[1].score
    assert blocks[2].impurity == pytest.approx(1.0)
    assert class_rarity(blocks, scored)[2] == 0.0 and class_rarity(blocks, scored)[1] == 1.0
    score_blocks(blocks, "mixed", seed=0)
    assert blocks[0].impurity > 0 and blocks[0].score > blocks[1].score
