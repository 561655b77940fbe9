"""dag-greedy puts anchors where the error model says they matter, not uniformly."""

import numpy as np

from anchorsr.graph import build_graph, objective
from anchorsr.graph.synthetic import moving_object_clip
from anchorsr.schedule import get_scheduler
from anchorsr.types import Chunk, PatchGrid

H, W, OBJ, SPEED = 96, 160, 32, 2


def _object_patches(grid, t):
    """Patches overlapping the object in frame t or where it was in frame t-1."""
    oy = (H - OBJ) // 2
    ox = 4 + t * SPEED
    box = np.zeros((H, W), bool)
    box[oy:oy + OBJ, max(0, ox - SPEED):ox + OBJ] = True
    return set(np.unique(grid.patch_index_map()[box]).tolist())


def test_static_background_moving_object():
    frames = moving_object_clip(H, W, 60, obj_px=OBJ, speed_px=SPEED)
    chunk = Chunk(tuple(frames), PatchGrid(16, H, W))
    graph = build_graph(chunk)
    plan = get_scheduler("dag-greedy").plan(chunk, 0.05, graph=graph)
    assert len(plan) > 0
    # The key frame's object patches start the longest reference chains: they come first.
    first = set(zip(plan.frames[:6].tolist(), plan.patches[:6].tolist()))
    assert first == {(0, p) for p in _object_patches(chunk.grid, 0)}
    # Every anchor sits on the object (the flat static background never needs SR).
    for t, p in zip(plan.frames.tolist(), plan.patches.tolist()):
        assert p in _object_patches(chunk.grid, t), (t, p)
    # And it beats every baseline's estimated error at the same budget.
    j_ours = objective(graph, plan)
    for name in ["uniform", "key-uniform", "neuroscaler", "keyframes", "palantir"]:
        assert j_ours < objective(graph, get_scheduler(name).plan(chunk, 0.05, graph=graph)), name


def test_real_h264_clip(tmp_path):
    """The same scene through libx264 (live profile) and the decoder's motion vectors."""
    from anchorsr.schedule import plan_stream
    from anchorsr.stream import EncodeSettings, open_frames, write_clip

    rng = np.random.default_rng(0)
    tex = rng.integers(0, 256, (OBJ, OBJ), dtype=np.uint8)

    def planes():
        for t in range(30):
            y = np.full((H, W), 96, np.uint8)
            oy, ox = (H - OBJ) // 2, 4 + t * SPEED
            y[oy:oy + OBJ, ox:ox + OBJ] = tex
            yield y, np.full((H // 2, W // 2), 128, np.uint8), np.full((H // 2, W // 2), 128, np.uint8)

    path = tmp_path / "object.mp4"
    write_clip(path, planes(), EncodeSettings(qp=10, crf=None))
    frames = list(open_frames(path))
    assert len(frames) == 30 and frames[0].is_key
    [(chunk, plan)] = list(plan_stream(frames, "dag-greedy", 0.05, chunk_frames=30, patch_px=16))
    assert 0 < plan.anchor_fraction() <= 0.05
    first = set(zip(plan.frames[:6].tolist(), plan.patches[:6].tolist()))
    assert first == {(0, p) for p in _object_patches(chunk.grid, 0)}
    on_object = [p in _object_patches(chunk.grid, t) for t, p in zip(plan.frames, plan.patches)]
    assert np.mean(on_object) >= 0.9
