"""Packets decoded in another process: a PacketSource fed with a VideoSource's wire packets gives
the same CodedFrames (planes, motion, times) as decoding the input directly."""

import pickle
from dataclasses import replace

import numpy as np
import pytest

from anchorsr.stream import EncodeSettings, VideoSource, open_frames, write_clip
from anchorsr.stream.packets import PacketFeed, PacketSource, StreamParams, wire_packets
from tests.conftest import pan_frames


# MPEG-TS (parameter sets in-band), MP4 (out of band: extradata), and B-frames (transcoded first)
@pytest.mark.parametrize("ext, extra", [("ts", {}), ("mp4", {}), ("mkv", {"bframes": 2, "refs": 3, "zerolatency": False})])
def test_wire_packets_decode_to_the_same_frames(tmp_path, ext, extra):
    path = str(tmp_path / f"in.{ext}")
    write_clip(path, pan_frames(25, w=96, h=64), EncodeSettings(keyint=10, crf=22, **extra))
    direct = list(open_frames(path))
    src = VideoSource(path)
    assert src.stats.transcoded == bool(extra)
    wire = pickle.loads(pickle.dumps(list(wire_packets(src))))  # what travels to an actor
    par = pickle.loads(pickle.dumps(StreamParams.of(src, "x")))
    assert len(wire) == len(direct) and wire[0].key
    got = list(PacketSource(par, wire))
    assert len(got) == len(direct)
    for a, b in zip(direct, got):
        assert a.kind == b.kind and abs(a.time - b.time) < 1e-9
        assert np.array_equal(a.y, b.y) and np.array_equal(a.u, b.u) and np.array_equal(a.v, b.v)
        assert np.array_equal(a.motion.mv, b.motion.mv) and np.array_equal(a.motion.intra, b.motion.intra)


def test_a_feed_restarted_at_a_key_frame_decodes_and_holds_replayed_frames(tmp_path):
    path = str(tmp_path / "in.ts")
    write_clip(path, pan_frames(30, w=96, h=64), EncodeSettings(keyint=10, crf=22))
    src = VideoSource(path)
    wire = list(wire_packets(src))
    par = StreamParams.of(src, "x")
    start = [p.seq for p in wire if p.key][1]
    feed, held = PacketFeed(), []
    feed.put([replace(p, replay=True) for p in wire[start:start + 5]] + wire[start + 5:])
    feed.end()
    got = list(PacketSource(par, feed, hold_replay=lambda: held.append(1)))
    direct = list(open_frames(path))[start:]
    assert len(got) == len(direct) and got[0].kind == "I" and len(held) == 5
    assert all(np.array_equal(a.y, b.y) for a, b in zip(direct, got))
