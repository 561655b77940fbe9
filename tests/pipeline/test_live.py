"""The threaded live pipeline, in-process, on tiny streams: same output as the sequential path
when there is time; deadlines, drops, gaps and resolution changes when there is not."""

import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from anchorsr.errors import SinkError
from anchorsr.pipeline import LivePipeline, PipelineOptions, SRPool, enhance_frames, make_patch_source, warm_up
from anchorsr.reuse import BicubicPatchSource, upscale_bicubic
from anchorsr.stream import EncodeSettings, Sink, open_frames, write_clip
from tests.conftest import pan_frames

TIMEOUT_S = 60


class ListSource:
    """Frames from a list, paced at ``fps`` (0: as fast as possible), with a scripted corrupt count
    and pauses (seconds before frame i)."""

    def __init__(self, frames, fps=0.0, corrupt_before=(), pause_before=None):
        self.frames, self.fps, self.corrupt_before = frames, fps, set(corrupt_before)
        self.pause_before = pause_before or {}
        self.stats = SimpleNamespace(corrupt_packets=0)

    def __iter__(self):
        t0 = time.monotonic()
        for i, f in enumerate(self.frames):
            if i in self.pause_before:
                time.sleep(self.pause_before[i])
                t0 += self.pause_before[i]
            if self.fps:
                time.sleep(max(0.0, t0 + i / self.fps - time.monotonic()))
            if i in self.corrupt_before:
                self.stats.corrupt_packets += 1
            yield f


class ListSink(Sink):
    def __init__(self, w, h, delay_s=0.0):
        super().__init__(w, h)
        self.planes, self.indices, self.delay_s, self.closed = [], [], delay_s, False

    def _write(self, y, u, v, index, at=None):
        time.sleep(self.delay_s)
        self.planes.append((y.copy(), u.copy(), v.copy()))
        self.indices.append(index)

    def close(self):
        self.closed = True


class SlowBicubic:
    """Bicubic HR patches that take ``delay_s`` per call for the first ``slow_calls`` calls."""

    def __init__(self, delay_s, slow_calls=10**9):
        self.delay_s, self.slow_calls, self.calls = delay_s, slow_calls, 0
        self.inner = BicubicPatchSource()

    def __call__(self, frame, boxes, scale):
        self.calls += 1
        if self.calls <= self.slow_calls:
            time.sleep(self.delay_s)
        return self.inner(frame, boxes, scale)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("live") / "pan.mp4"
    write_clip(path, pan_frames(36, w=160, h=96), EncodeSettings(keyint=12))
    return list(open_frames(path))


def run(frames, options, source=None, patch_source=None, sink_delay_s=0.0, make_sink=None):
    warm_up(options, BicubicPatchSource())  # compile the kernels outside the timed stream
    pool = SRPool(patch_source or BicubicPatchSource(), sr_threads=None)
    sinks = []

    def default_sink(w, h, settings):
        sinks.append(ListSink(w, h, sink_delay_s))
        return sinks[-1]

    p = LivePipeline(source or ListSource(frames), 30.0, make_sink or default_sink, pool, options)
    try:
        p.start()
        assert p.wait(TIMEOUT_S), "pipeline did not finish in time"
        if p._errors:
            raise p._errors[0]
    finally:
        pool.close()
    return p, (sinks[0] if sinks else None)


@pytest.mark.parametrize("anchors", ["bicubic", "network"])
@pytest.mark.parametrize("realtime", [False, True], ids=["file-mode", "generous-deadlines"])
def test_both_runners_give_the_same_frames_bit_for_bit(clip, realtime, anchors):
    """The sequential and the real-time runner drive the same steps: when nothing is late or
    dropped (file mode, or deadlines far away), their output frames are identical. With the SR
    network both runners use one engine (numpy here; ``--sr-engine auto`` would give a live run
    torch), so the anchors are the same bits too."""
    options = PipelineOptions(realtime=realtime, chunk_frames=12, patch_px=32, budget_fraction=0.1,
                              max_latency_s=60.0, queue_frames=len(clip))
    source = BicubicPatchSource() if anchors == "bicubic" else make_patch_source("default", 2, engine="numpy")
    # paced in real-time mode, so that no backlog in front of reconstruction shrinks the budget
    p, sink = run(clip, options, ListSource(clip, fps=15 if realtime else 0), patch_source=source)
    ref = list(enhance_frames(clip, options, source))
    if anchors == "network":  # the network's anchors differ from bicubic ones: the test sees them
        bicubic = list(enhance_frames(clip, options, BicubicPatchSource()))
        assert any(not np.array_equal(a.y, b.y) for a, b in zip(ref, bicubic))
    assert p.stats.dropped == p.stats.late == p.stats.sr_late_frames == 0
    assert not realtime or set(p.controller.history) == {0.1}
    assert len(sink.planes) == len(ref) == 36 and sink.closed and sink.indices == list(range(36))
    for (y, u, v), hr in zip(sink.planes, ref):
        assert np.array_equal(y, hr.y) and np.array_equal(u, hr.u) and np.array_equal(v, hr.v)
    assert p.stats.sr_share == pytest.approx(0.1, abs=0.02)


def test_slow_sr_never_holds_a_frame_past_its_deadline_and_the_budget_recovers(clip):
    # 144 frames, 4.8 s at 30 fps: 24 chunks, room to shrink and to grow back (by 1/4 of the
    # target per chunk up to the ceiling, 3/4 of where the overload began, then by 1/16)
    # wherever the plans put the slow calls (a chunk's first frame, the one with the nearest
    # deadline, takes the anchors of the intra node bias on this pan)
    frames = clip * 4
    options = PipelineOptions(realtime=True, chunk_frames=6, patch_px=32, budget_fraction=0.1, max_latency_s=0.5)
    slow = SlowBicubic(delay_s=0.3, slow_calls=4)
    p, sink = run(frames, options, ListSource(frames, fps=30), slow)
    assert len(sink.planes) + p.stats.dropped == 144 and p.stats.dropped <= 3  # SR waits were cut short
    assert p.stats.sr_late_frames > 0  # some frames were rebuilt by reuse alone
    assert min(p.controller.history) < 0.1 / 2  # the budget shrank under load...
    assert p.controller.history[-1] == pytest.approx(0.1)  # ...and grew back once SR was fast again
    assert max(p.stats.latencies_s) < 0.5 + 0.3  # deadline plus the reconstruct/encode of one frame


def test_a_paused_input_has_its_chunk_planned_at_once(clip):
    """The last frame comes 6 s after the others (as an MPEG-TS demuxer hands out a UDP stream's
    last frame only when the read times out): the chunk in progress is planned when the input
    pauses, so none of its frames waits past its deadline (2 s) and nothing is dropped."""
    options = PipelineOptions(realtime=True, chunk_frames=12, patch_px=32, budget_fraction=0.05, max_latency_s=2.0)
    source = ListSource(clip, fps=30, pause_before={35: 6.0})
    p, sink = run(clip, options, source)
    assert p.stats.frames_in == 36 and p.stats.dropped == 0 and len(sink.planes) == 36
    assert p.stats.idle_flushes >= 1 and p.idle_flush_s == pytest.approx((2.0 - 12 / 30) / 4)


def test_a_full_live_queue_drops_frames_and_output_goes_on(clip):
    options = PipelineOptions(realtime=True, chunk_frames=6, patch_px=32, budget_fraction=0.0, queue_frames=3)
    p, sink = run(clip, options, ListSource(clip, fps=0), sink_delay_s=0.03)
    assert p.stats.dropped > 0
    assert p.stats.frames_out + p.stats.dropped == p.stats.frames_in == 36
    assert len(sink.planes) == p.stats.frames_out


def test_corrupt_or_missing_input_resets_the_reference(clip):
    options = PipelineOptions(realtime=False, chunk_frames=12, patch_px=32, budget_fraction=0.0)
    _, clean = run(clip, options)
    p, hurt = run(clip, options, ListSource(clip, corrupt_before={5}))
    assert p.stats.corrupt_packets == 1
    bic = upscale_bicubic(clip[5].y, clip[5].u, clip[5].v, 2)[0]
    assert clip[5].kind == "P" and np.array_equal(hurt.planes[5][0], bic)  # rebuilt without a reference
    assert not np.array_equal(clean.planes[5][0], bic)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(clean.planes[:5], hurt.planes[:5]))
    holed = clip[:8] + clip[9:]
    p, out = run(holed, options)
    assert p.stats.missing_frames == 1 and len(out.planes) == 35
    assert np.array_equal(out.planes[8][0], upscale_bicubic(clip[9].y, clip[9].u, clip[9].v, 2)[0])


def test_resolution_change_restarts_the_stream_pipeline(clip, tmp_path):
    path = tmp_path / "small.mp4"
    write_clip(path, pan_frames(10, w=120, h=72), EncodeSettings(keyint=12))
    frames = clip[:20] + list(open_frames(path))
    options = PipelineOptions(realtime=False, chunk_frames=12, patch_px=32, budget_fraction=0.05)
    p, sink = run(frames, options)
    assert p.stats.restarts == 1 and len(sink.planes) == 30
    assert {pl[0].shape for pl in sink.planes} == {(192, 320)} and sink.resized_frames == 10


def test_a_sink_failure_ends_the_stream_with_that_error(clip):
    def broken(w, h, settings):
        raise SinkError("cannot write 'nowhere'")

    with pytest.raises(SinkError, match="nowhere"):
        run(clip, PipelineOptions(realtime=False, chunk_frames=12, patch_px=32), make_sink=broken)


def test_an_overloaded_pipeline_sheds_frames_and_keeps_its_latency_bounded(clip):
    frames = clip * 2
    options = PipelineOptions(realtime=True, chunk_frames=6, patch_px=32, budget_fraction=0.05, max_latency_s=0.6)
    p, sink = run(frames, options, ListSource(frames, fps=30), sink_delay_s=0.06)  # encode at ~16 fps
    assert p.stats.dropped > 10 and p.stats.frames_out + p.stats.dropped == 72
    # output timestamps follow the input: the gaps are where frames were shed, time is not squeezed
    assert np.all(np.diff(sink.indices) >= 1) and sink.indices[-1] > len(sink.indices)
    assert max(p.stats.latencies_s) < 0.6 + 5 * 0.06 + 0.3  # deadline + the encoder's queue
    # after the drops the controller asked for the light reconstruction (the box model of the LR)
    assert 0 < p.stats.light_frames <= p.stats.frames_out and p.snapshot()["light_frames"] == p.stats.light_frames
    p, _ = run(frames, replace(options, light=False), ListSource(frames, fps=30), sink_delay_s=0.06)
    assert p.stats.dropped > 10 and p.stats.light_frames == 0


def test_client_mode_takes_the_anchors_of_a_plan_file(clip, tmp_path):
    from anchorsr.schedule import plan_stream, write_plans

    plan_path = str(tmp_path / "clip.plan")
    write_plans(plan_path, (plan for _, plan in plan_stream(clip, "dag-greedy", 0.1, 12, 32)))
    options = PipelineOptions(realtime=False, chunk_frames=12, patch_px=32, plan_path=plan_path)
    p, sink = run(clip, options)
    ref = list(enhance_frames(clip, PipelineOptions(plan_path=plan_path), BicubicPatchSource()))
    assert len(sink.planes) == 36 and p.stats.sr_share == pytest.approx(0.1, abs=0.02)
    assert all(np.array_equal(a[0], hr.y) for a, hr in zip(sink.planes, ref))
