import numpy as np
import pytest

from anchorsr.errors import ConfigError, PlanFormatError
from anchorsr.types import AnchorPlan, PatchGrid, chroma_box, default_patch_px, grid_for


def test_grid_keeps_partial_edge_patches():
    g = PatchGrid(64, 120, 200)
    assert (g.rows, g.cols) == (2, 4)
    b = g.boxes()
    assert b[-1].tolist() == [64, 120, 192, 200]
    assert g.areas().sum() == 120 * 200
    idx = g.patch_index_map()
    assert idx.shape == (120, 200) and idx[119, 199] == g.n_patches - 1
    assert np.array_equal(np.bincount(idx.ravel()), g.areas())


def test_grid_rejects_odd_patch_size():
    with pytest.raises(ConfigError, match="even"):
        PatchGrid(63, 100, 100)


def test_chroma_box_covers_odd_edges():
    assert chroma_box((64, 121, 192, 201)) == (32, 61, 96, 101)


def test_plan_round_trip_and_prefix():
    g = PatchGrid(32, 90, 130)
    rng = np.random.default_rng(3)
    plan = AnchorPlan(120, 60, g, rng.integers(0, 60, 50), rng.integers(0, g.n_patches, 50))
    back = AnchorPlan.from_bytes(plan.to_bytes())
    assert (back.chunk_start, back.n_frames, back.grid) == (120, 60, g)
    assert np.array_equal(back.frames, plan.frames) and np.array_equal(back.patches, plan.patches)
    small = plan.prefix_for_budget(0.01)
    assert small.anchor_fraction() <= 0.01 + 1e-12
    assert np.array_equal(small.patches, plan.patches[: len(small)])
    assert plan.mask().sum() == len(set(zip(plan.frames.tolist(), plan.patches.tolist())))


@pytest.mark.parametrize("data, message", [
    (b"", "header"),
    (b"XXXX" + bytes(40), "magic"),
])
def test_plan_rejects_garbage(data, message):
    with pytest.raises(PlanFormatError, match=message):
        AnchorPlan.from_bytes(data)


def test_plan_rejects_truncated_body():
    g = PatchGrid(64, 120, 200)
    raw = AnchorPlan(0, 10, g, [1, 2], [3, 4]).to_bytes()
    with pytest.raises(PlanFormatError, match="anchors"):
        AnchorPlan.from_bytes(raw[:-3])


def test_plan_rejects_out_of_range_patch():
    with pytest.raises(ConfigError, match="patch indices"):
        AnchorPlan(0, 10, PatchGrid(64, 120, 200), [0], [8])


@pytest.mark.parametrize("size,px", [((1080, 1920), 64), ((2160, 3840), 64), ((1088, 1920), 64),
                                     ((720, 1280), 32), ((540, 960), 32), ((136, 320), 32), ((2, 2), 32)])
def test_default_patch_size_is_fine_below_1080p(size, px):
    """64 px from 500 patches a frame up (1080p LR has 510), 32 px below."""
    assert default_patch_px(*size) == px
    assert grid_for(None, *size) == PatchGrid(px, *size)
    assert grid_for(48, *size) == PatchGrid(48, *size)
