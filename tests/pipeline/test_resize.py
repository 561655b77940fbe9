"""A resolution change anywhere in the stream (first frame after the start, mid-chunk, exactly
at a chunk boundary, twice in a row) restarts scheduling and reconstruction at the new size in
every entry point: enhance of a file, plan, and the live runner."""

import numpy as np
import pytest

from anchorsr.cli import main
from anchorsr.pipeline import PipelineOptions, enhance_file
from anchorsr.schedule import read_plans
from anchorsr.stream import open_frames
from tests.conftest import resized_stream
from tests.pipeline.test_live import run

CHUNK = 12
A, B = (96, 64), (128, 80)
# where the size changes: frame 1, mid-chunk, exactly at a chunk boundary, at two boundaries in a row
LAYOUTS = {
    "frame-1": [(1, *A), (15, *B)],
    "mid-chunk": [(7, *A), (11, *B)],
    "chunk-boundary": [(CHUNK, *A), (CHUNK + 3, *B)],
    "twice": [(CHUNK, *A), (CHUNK, *B), (6, *A)],
}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def stream(request, tmp_path_factory):
    parts = LAYOUTS[request.param]
    path = resized_stream(tmp_path_factory.mktemp("resize") / f"{request.param}.h264", parts)
    sizes = [(w, h) for n, w, h in parts for _ in range(n)]
    return path, sizes


def test_enhance_rebuilds_every_frame_at_its_size(stream, tmp_path):
    path, sizes = stream
    out = str(tmp_path / "o.mp4")
    options = PipelineOptions(model="bicubic", chunk_frames=CHUNK, patch_px=32, budget_fraction=0.1)
    summary = enhance_file(path, out, options)
    assert summary.frames == len(sizes)
    assert summary.sizes[0] == (2 * sizes[0][0], 2 * sizes[0][1]) and len(summary.sizes) == 2
    assert len(list(open_frames(out))) == len(sizes)


def test_plan_schedules_each_size_afresh(stream, tmp_path):
    path, sizes = stream
    out = str(tmp_path / "r.plan")
    assert main(["plan", path, "-o", out, "--chunk-frames", str(CHUNK), "--patch-px", "32",
                 "--budget", "10%"]) == 0
    plans = read_plans(out)
    assert sum(p.n_frames for p in plans) == len(sizes)
    for p in plans:  # each plan covers frames of one size, on that size's grid
        covered = {sizes[i] for i in range(p.chunk_start, p.chunk_start + p.n_frames)}
        assert covered == {(p.grid.width, p.grid.height)}
        assert len(p) > 0 or p.n_frames == 1  # one small frame: 10% is less than a patch


def test_live_runner_rebuilds_every_frame(stream):
    path, sizes = stream
    frames = list(open_frames(path))
    assert [(f.width, f.height) for f in frames] == sizes
    options = PipelineOptions(realtime=False, chunk_frames=CHUNK, patch_px=32, budget_fraction=0.1)
    p, sink = run(frames, options)
    assert len(sink.planes) == len(sizes) and p.stats.restarts == changes(sizes)
    assert {pl[0].shape for pl in sink.planes} == {(2 * sizes[0][1], 2 * sizes[0][0])}
    assert p.stats.anchor_pixels > 0


def changes(sizes) -> int:
    return sum(a != b for a, b in zip(sizes, sizes[1:]))
