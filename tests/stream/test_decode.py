import numpy as np
import pytest

from anchorsr.errors import UnsupportedStreamError
from anchorsr.stream import EncodeSettings, VideoSource, open_frames, write_clip
from anchorsr.stream.h264 import find_sps
from tests.conftest import H, W, pan_frames


def test_decodes_planes_kinds_sizes_and_times(pan_clip):
    frames = list(open_frames(pan_clip))
    assert len(frames) == 24
    assert [f.kind for f in frames[:13]] == ["I"] + ["P"] * 11 + ["I"]
    f = frames[3]
    assert f.y.shape == (H, W) and f.u.shape == (H // 2, W // 2) and f.y.dtype == np.uint8
    assert all(fr.size_bytes > 0 for fr in frames)
    assert frames[0].size_bytes > frames[1].size_bytes  # key frames cost more
    assert [fr.index for fr in frames] == list(range(24))
    assert frames[1].time == pytest.approx(1 / 30, abs=1e-3)


def test_motion_field_matches_known_pan(pan_clip):
    f = list(open_frames(pan_clip))[5]
    m = f.motion
    assert m.mv.shape == (30, 50, 2) and m.intra.shape == (30, 50)
    inter = ~m.intra
    assert inter.mean() > 0.8
    # content moves by (-2, -1) px per frame, so blocks reference (+2, +1) px = (8, 4) quarter pels
    vectors, counts = np.unique(m.mv[inter].reshape(-1, 2), axis=0, return_counts=True)
    assert vectors[counts.argmax()].tolist() == [8, 4]
    assert counts.max() / inter.sum() > 0.8


def test_key_frames_are_all_intra(pan_clip):
    f = next(iter(open_frames(pan_clip)))
    assert f.kind == "I" and f.motion.intra.all()


@pytest.mark.parametrize("settings, reason", [
    (EncodeSettings(bframes=2, refs=3), "B-frames"),
    (EncodeSettings(bframes=0, refs=3), "3 reference frames"),
    (EncodeSettings(codec="mpeg4", qp=2), "codec is mpeg4"),
])
def test_unsupported_structure_is_transcoded(tmp_path, settings, reason):
    path = tmp_path / "in.mkv"
    write_clip(path, pan_frames(12), settings)
    src = VideoSource(path)
    assert src.stats.transcoded and reason in src.stats.transcode_reason
    frames = list(src)
    assert len(frames) == 12
    assert all(f.kind == "P" for f in frames[1:])
    assert (~frames[4].motion.intra).mean() > 0.5
    with pytest.raises(UnsupportedStreamError, match=reason):
        VideoSource(path, transcode=False)


def test_live_profile_is_used_directly(pan_clip):
    src = VideoSource(pan_clip, transcode=False)
    assert not src.stats.transcoded
    src.close()


def test_sps_parser_reads_reference_count(tmp_path):
    for refs in (1, 4):
        path = tmp_path / f"r{refs}.ts"
        write_clip(path, pan_frames(3), EncodeSettings(refs=refs))
        import av

        with av.open(str(path)) as c:
            pkt = next(p for p in c.demux(video=0) if p.size)
            assert find_sps(bytes(pkt)).max_num_ref_frames == refs


def test_corrupt_packets_are_skipped_and_decoding_continues(tmp_path):
    path = tmp_path / "clip.ts"
    write_clip(path, pan_frames(24), EncodeSettings(keyint=8))
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    mid = len(data) // 2
    data[mid:mid + 3000] = rng.integers(0, 256, 3000, np.uint8).tobytes()
    bad = tmp_path / "bad.ts"
    bad.write_bytes(bytes(data))
    frames = list(open_frames(bad))
    assert 12 <= len(frames) <= 24
    assert all(f.y.shape == (H, W) for f in frames)
