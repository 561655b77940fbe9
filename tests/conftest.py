"""Shared fixtures: tiny deterministic clips made by the tests themselves (no network)."""

from __future__ import annotations

import numpy as np
import pytest

from anchorsr.stream import EncodeSettings, write_clip

W, H = 200, 120  # not multiples of 16 in height, deliberately


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth-ish random texture with detail at several scales (uint8)."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((h, w), np.float32)
    for cell, amp in ((16, 60.0), (4, 40.0), (1, 25.0)):
        small = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
        acc += amp * np.kron(small, np.ones((cell, cell), np.float32))[:h, :w]
    return np.clip(acc + 128, 0, 255).astype(np.uint8)


def pan_frames(n: int, dx: int = 2, dy: int = 1, w: int = W, h: int = H, seed: int = 0):
    """(Y, U, V) frames of a texture panning by (dx, dy) whole pixels per frame."""
    tex = textured(h + abs(dy) * n + 2, w + abs(dx) * n + 2, seed)
    ctex = textured((h + abs(dy) * n) // 2 + 2, (w + abs(dx) * n) // 2 + 2, seed + 1)
    for i in range(n):
        y0, x0 = dy * i if dy > 0 else 0, dx * i if dx > 0 else 0
        y = np.ascontiguousarray(tex[y0:y0 + h, x0:x0 + w])
        c = np.ascontiguousarray(ctex[y0 // 2:y0 // 2 + (h + 1) // 2, x0 // 2:x0 // 2 + (w + 1) // 2])
        yield y, c, 255 - c


@pytest.fixture(scope="session")
def pan_clip(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("media") / "pan.mp4"
    write_clip(path, pan_frames(24), EncodeSettings(keyint=12, crf=18))
    return str(path)


def resized_stream(path, parts, keyint: int = 12) -> str:
    """Annex B H.264 clips of different sizes back to back, as ``cat a.h264 b.h264`` makes them.

    parts: (n_frames, width, height) of each clip in order."""
    data = b""
    for i, (n, w, h) in enumerate(parts):
        part = f"{path}.part{i}.h264"
        write_clip(part, pan_frames(n, w=w, h=h, seed=i), EncodeSettings(keyint=keyint, crf=20))
        with open(part, "rb") as fh:
            data += fh.read()
    with open(path, "wb") as fh:
        fh.write(data)
    return str(path)
