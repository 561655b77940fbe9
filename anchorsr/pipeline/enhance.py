"""Sequential enhancement of one input into one output file: decode -> reconstruct -> encode.

(The live, pipelined and deadline-aware version belongs to ``anchorsr serve``; this is the
straight path the CLI's ``enhance`` and the demo use.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import ConfigError
from ..reuse import BicubicPatchSource, Reconstructor, ReuseConfig
from ..stream import EncodeSettings, VideoSource, VideoWriter, resize_yuv
from ..types import CodedFrame, HRFrame, HRPatchSource, PatchGrid

log = logging.getLogger(__name__)

ANCHOR_MODES = ("keyframes", "none")


@dataclass(frozen=True)
class EnhanceOptions:
    scale: int = 2
    loop: str = "closed"
    anchors: str = "keyframes"
    patch_px: int = 64
    transcode: bool = True
    crf: float = 18.0
    timeout_s: float = 10.0
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.anchors not in ANCHOR_MODES:
            raise ConfigError(f"anchors must be one of {ANCHOR_MODES}, got {self.anchors!r}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"max_frames must be >= 1, got {self.max_frames}")


@dataclass
class EnhanceSummary:
    frames: int = 0
    anchor_pixels: int = 0
    lr_pixels: int = 0
    corrupt_packets: int = 0
    transcoded: bool = False
    seconds: float = 0.0
    output: str = ""
    sizes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def sr_share(self) -> float:
        return self.anchor_pixels / self.lr_pixels if self.lr_pixels else 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def reconstruct_stream(frames: Iterable[CodedFrame], config: ReuseConfig, anchors: str = "keyframes",
                       patch_px: int = 64, patch_source: HRPatchSource | None = None,
                       summary: EnhanceSummary | None = None) -> Iterator[HRFrame]:
    """Rebuild every frame at HR; a resolution change restarts the reconstruction."""
    rec = Reconstructor(config)
    source = patch_source or BicubicPatchSource()
    grid: PatchGrid | None = None
    for frame in frames:
        if grid is None or (grid.height, grid.width) != (frame.height, frame.width):
            if grid is not None:
                log.warning("resolution changed to %dx%d at frame %d: restarting reconstruction",
                            frame.width, frame.height, frame.index)
                rec.reset()
            grid = PatchGrid(patch_px, frame.height, frame.width)
        boxes = grid.boxes() if (anchors == "keyframes" and frame.is_key) else None
        hr = rec.step(frame, boxes, source)
        if summary is not None:
            summary.frames += 1
            summary.lr_pixels += frame.height * frame.width
            summary.anchor_pixels += 0 if boxes is None else int(grid.areas().sum())
        yield hr


def enhance_file(source: str, output: str, options: EnhanceOptions = EnhanceOptions(),
                 on_frame: Callable[[EnhanceSummary], None] | None = None) -> EnhanceSummary:
    """Enhance ``source`` (file or URL) into the video file ``output``; returns a summary.

    The output is written under a temporary name and moved into place when complete; on
    Ctrl-C what was produced so far is finalised.
    """
    config = ReuseConfig(options.scale, options.loop)
    summary = EnhanceSummary(output=output)
    src = VideoSource(source, transcode=options.transcode, timeout_s=options.timeout_s)
    summary.transcoded = src.stats.transcoded
    writer: VideoWriter | None = None
    start = time.perf_counter()
    frames: Iterable[CodedFrame] = src
    if options.max_frames is not None:
        frames = (f for f in src if f.index < options.max_frames)
    try:
        for hr in reconstruct_stream(frames, config, options.anchors, options.patch_px, summary=summary):
            if writer is None:
                settings = EncodeSettings(fps=src.fps, crf=options.crf, keyint=max(int(round(src.fps * 2)), 1))
                writer = VideoWriter(output, hr.y.shape[1], hr.y.shape[0], settings)
                summary.sizes.append((hr.y.shape[1], hr.y.shape[0]))
            planes = (hr.y, hr.u, hr.v)
            if (hr.y.shape[1], hr.y.shape[0]) != summary.sizes[0]:
                # A file keeps one size: frames after a resolution change are rescaled to it.
                if (hr.y.shape[1], hr.y.shape[0]) not in summary.sizes:
                    log.warning("input resolution changed; output frames rescaled to %dx%d", *summary.sizes[0])
                    summary.sizes.append((hr.y.shape[1], hr.y.shape[0]))
                planes = resize_yuv(*planes, *summary.sizes[0])
            writer.write(*planes)
            summary.seconds = time.perf_counter() - start
            if on_frame is not None:
                on_frame(summary)
            if options.max_frames is not None and summary.frames >= options.max_frames:
                break
    except KeyboardInterrupt:
        if writer is not None:
            writer.close()
        raise
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        src.close()
    summary.corrupt_packets = src.stats.corrupt_packets
    summary.seconds = time.perf_counter() - start
    if writer is None:
        raise ConfigError(f"no frames decoded from {source!r}")
    writer.close()
    return summary


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays of one shape."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
