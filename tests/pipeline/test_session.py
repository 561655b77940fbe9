"""Session folders of `anchorsr serve`: never reused, retention keeps the newest finished ones."""

from anchorsr.pipeline.session import apply_retention, new_session_folder, peak_bandwidth, sessions_on_disk


def test_new_session_folder_goes_past_existing_ones(tmp_path):
    for name in ("cam-1", "cam-7", "cam-2-3", "camera-9", "cam-x"):
        (tmp_path / name).mkdir()
    (tmp_path / "cam-8").write_text("a file, not a session")
    assert new_session_folder(str(tmp_path), "cam") == ("cam-9", str(tmp_path / "cam-9"))  # past 7, not onto 8
    assert new_session_folder(str(tmp_path), "cam") == ("cam-10", str(tmp_path / "cam-10"))
    assert new_session_folder(str(tmp_path), "cam-2")[0] == "cam-2-4"
    assert new_session_folder(str(tmp_path), "new")[0] == "new-1"
    assert [s for _, s in sessions_on_disk(str(tmp_path), "cam")] == ["cam-1", "cam-7", "cam-9", "cam-10"]


def test_retention_keeps_the_newest_finished_sessions(tmp_path):
    for n in (1, 2, 3, 10, 11):
        (tmp_path / f"cam-{n}").mkdir()
        (tmp_path / f"cam-{n}" / "index.m3u8").write_text("x")
    (tmp_path / "other-1").mkdir()
    assert apply_retention(str(tmp_path), "cam", 0, set()) == []
    assert apply_retention(str(tmp_path), "cam", 2, {"cam-11"}) == ["cam-1", "cam-2"]  # numeric order, live kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam-10", "cam-11", "cam-3", "other-1"]


def test_peak_bandwidth(tmp_path):
    (tmp_path / "a.ts").write_bytes(b"x" * 1000)
    (tmp_path / "b.ts").write_bytes(b"x" * 3000)
    (tmp_path / "index.m3u8").write_text("#EXTM3U\n#EXTINF:2.0,\na.ts\n#EXTINF:1.5,\nb.ts\n#EXT-X-ENDLIST\n")
    assert peak_bandwidth(str(tmp_path / "index.m3u8")) == 16000
    assert peak_bandwidth(str(tmp_path / "missing.m3u8")) is None
