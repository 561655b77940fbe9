"""Conversions between NumPy YUV 4:2:0 planes and PyAV frames, and FFmpeg (swscale) resizing."""

from __future__ import annotations

import av
import numpy as np

YUV = tuple[np.ndarray, np.ndarray, np.ndarray]


def yuv_to_frame(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> av.VideoFrame:
    """Planes -> a yuv420p VideoFrame of luma size (H, W); odd sizes allowed.

    Chroma planes larger than ceil(H/2) x ceil(W/2) (HR planes are scale x LR chroma) are cropped.
    """
    h, w = y.shape
    frame = av.VideoFrame(w, h, "yuv420p")
    for plane, data in zip(frame.planes, (y, u, v)):
        buf = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
        ph, pw = plane.height, plane.width
        src = data[:ph, :pw]
        buf[: src.shape[0], : src.shape[1]] = src
        if src.shape[0] < ph:  # replicate the last row/column when the source is short
            buf[src.shape[0]:ph, : src.shape[1]] = src[-1:]
        if src.shape[1] < pw:
            buf[:ph, src.shape[1]:pw] = buf[:ph, src.shape[1] - 1: src.shape[1]]
    return frame


def frame_to_yuv(frame: av.VideoFrame) -> YUV:
    """A VideoFrame (any pixel format) -> owned yuv420p planes."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    out = []
    for plane in frame.planes:
        arr = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
        out.append(arr[: plane.height, : plane.width].copy())
    return out[0], out[1], out[2]


def rgb_to_yuv(rgb: np.ndarray) -> YUV:
    """uint8 (H, W, 3) RGB -> yuv420p planes (BT.601, swscale)."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return frame_to_yuv(frame.reformat(format="yuv420p", width=w, height=h))


def yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """yuv420p planes -> uint8 (H, W, 3) RGB (swscale)."""
    return yuv_to_frame(y, u, v).reformat(format="rgb24").to_ndarray()


def resize_yuv(y: np.ndarray, u: np.ndarray, v: np.ndarray, width: int, height: int,
               interpolation: str = "BICUBIC") -> YUV:
    """Resize yuv420p planes with FFmpeg's swscale (antialiased when shrinking)."""
    frame = yuv_to_frame(y, u, v)
    return frame_to_yuv(frame.reformat(width=width, height=height, format="yuv420p",
                                       interpolation=interpolation))
