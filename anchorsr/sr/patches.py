"""Seam-free, batched SR of anchor patches, and whole-frame SR.

A patch is super-resolved from its LR box grown by ``halo_px`` context pixels on every side
(clipped at the frame edge), and the halo is cropped off after SR. By default the halo is the
network's receptive radius (4 LR pixels for the shipped networks): the least that is exact, and
every pixel more is network work thrown away (at 64 px patches a halo of 8 made the network see
1.56x the patch's pixels, a halo of 4 1.27x; at 32 px, 2.25x against 1.56x). When ``halo_px``
is at least the network's receptive radius, every output pixel sees exactly the inputs it would
see in a whole-frame run (zero padding falls on the same frame edges), so pasted anchors have no
seams: the assembled frame equals whole-frame inference to float rounding. A smaller halo is
allowed (faster) and trades exactness for speed.

Patches are batched by their haloed size (interior patches share one size; edge patches form
small groups). Luma goes through the network; chroma is bicubic (see ``nets`` for why).

Engines: the model's network is a torch module (torch engine) or a ``engine.NumpyPlainNet``
(numpy engine, float32, no torch import); :class:`SRRunner` takes and returns float32 numpy
either way, and chroma is numpy bicubic for both, so this module does not import torch.

Precision (torch engine): on CPUs with native bf16 (AVX-512 BF16 / AMX) the convolutions run
under bf16 autocast and channels-last, which measured 3-5x faster than float32 there (see
``bench``); the skip is added in float32 so the LR signal itself is not rounded.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError
from ..types import CodedFrame, HRPatch, chroma_box
from .contract import SRModel
from .resample import bicubic_planes_np

log = logging.getLogger(__name__)

CHROMA_HALO_PX = 4  # chroma pixels; bicubic needs 2


def cpu_has_bf16() -> bool:
    """True when this CPU runs bf16 matmuls natively (oneDNN's check; imports torch)."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _to_float(planes: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(planes, dtype=np.float32) / np.float32(255.0)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    x = np.multiply(x, np.float32(255.0), dtype=np.float32)
    np.rint(x, out=x)
    np.clip(x, 0, 255, out=x)
    return x.astype(np.uint8)


class SRRunner:
    """Runs a model's luma network on batches: float32 numpy in and out, whichever engine.

    precision: "auto" (bf16 where the CPU has it or on CUDA, else float32), "bf16" or "fp32";
    the numpy engine runs float32 only ("auto" or "fp32").
    """

    def __init__(self, model: SRModel, precision: str = "auto", max_batch: int = 64):
        if precision not in ("auto", "bf16", "fp32"):
            raise ConfigError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")
        self.model = model
        self.max_batch = max_batch
        self.engine = model.engine
        if self.engine == "numpy":
            if precision == "bf16":
                raise ConfigError("the numpy SR engine runs float32 only, got precision 'bf16'; "
                                  "expected 'auto' or 'fp32' (or the torch engine)")
            self.device, self.precision = "cpu", "fp32"
            return
        import torch

        self.device = next(model.net.parameters()).device
        if precision == "auto":
            precision = "bf16" if (self.device.type == "cuda" or cpu_has_bf16()) else "fp32"
        self.precision = precision
        if self.device.type == "cpu":
            model.net.to(memory_format=torch.channels_last)

    def set_threads(self, threads: int) -> None:
        """Threads one call may use: the numpy engine's, or torch's intra-op (process-wide)."""
        if self.engine == "numpy":
            self.model.net.threads = threads
        else:
            import torch

            torch.set_num_threads(threads)

    def run(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, 1, h, w) Y/255 -> float32 (N, 1, s*h, s*w), in chunks of ``max_batch``."""
        if self.engine == "numpy":
            return self.model.net(x)
        return self._run_torch(x)

    def _run_torch(self, x: np.ndarray) -> np.ndarray:
        import torch

        outs = []
        with torch.inference_mode():
            for i in range(0, x.shape[0], self.max_batch):
                xb = torch.from_numpy(np.ascontiguousarray(x[i:i + self.max_batch])).to(self.device)
                if self.device.type == "cpu":
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                    outs.append(self.model.net(xb).float().cpu().numpy())
        return np.concatenate(outs) if len(outs) > 1 else outs[0]

    def upscale_y(self, y: np.ndarray) -> np.ndarray:
        """uint8 (H, W) -> uint8 (s*H, s*W): the whole plane in one run."""
        return _to_uint8(self.run(_to_float(y)[None, None])[0, 0])


def _halo_boxes(boxes: np.ndarray, halo: int, height: int, width: int) -> np.ndarray:
    """(K, 4) boxes grown by ``halo`` and clipped to the plane."""
    g = boxes.astype(np.int64).copy()
    g[:, 0] = np.maximum(g[:, 0] - halo, 0)
    g[:, 2] = np.maximum(g[:, 2] - halo, 0)
    g[:, 1] = np.minimum(g[:, 1] + halo, height)
    g[:, 3] = np.minimum(g[:, 3] + halo, width)
    return g


def upscale_boxes(plane: np.ndarray, boxes: np.ndarray, scale: int, halo: int, fn,
                  grown: np.ndarray | None = None) -> list[np.ndarray]:
    """Upscale ``plane`` inside each box with haloed, size-grouped batches.

    plane: uint8 (H, W) or (C, H, W); boxes: int (K, 4) (y0, y1, x0, x1) in its pixels;
    fn: float (N, C, h, w) -> (N, C, s*h, s*w). Returns K uint8 arrays (C?, s*bh, s*bw).
    grown: the boxes already grown by ``halo`` (``_halo_boxes``), when the caller has them.
    """
    squeeze = plane.ndim == 2
    if squeeze:
        plane = plane[None]
    _, height, width = plane.shape
    if grown is None:
        grown = _halo_boxes(boxes, halo, height, width)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for k, (y0, y1, x0, x1) in enumerate(grown):
        groups[(int(y1 - y0), int(x1 - x0))].append(k)
    out: list[np.ndarray | None] = [None] * len(boxes)
    for members in groups.values():
        batch = np.stack([plane[:, grown[k, 0]:grown[k, 1], grown[k, 2]:grown[k, 3]] for k in members])
        hr = _to_uint8(fn(_to_float(batch)))
        for j, k in enumerate(members):
            oy, ox = scale * (boxes[k, 0] - grown[k, 0]), scale * (boxes[k, 2] - grown[k, 2])
            bh, bw = scale * (boxes[k, 1] - boxes[k, 0]), scale * (boxes[k, 3] - boxes[k, 2])
            patch = hr[j, :, oy:oy + bh, ox:ox + bw]
            out[k] = np.ascontiguousarray(patch[0] if squeeze else patch)
    return out  # type: ignore[return-value]


class SRPatchSource:
    """The SR network as an ``HRPatchSource`` (see ``anchorsr.types``).

    ``source(frame, boxes, scale)`` returns, per LR luma box (y0, y1, x0, x1), a (Y, U, V)
    uint8 triple: Y (scale*(y1-y0), scale*(x1-x0)) from the network, U and V of scale x the
    ``chroma_box`` size, bicubic. Boxes should start on even coordinates (as PatchGrid's do).
    """

    def __init__(self, model: SRModel, halo_px: int | None = None, precision: str = "auto",
                 max_batch: int = 64, whole_frame_at: float = 1.0,
                 whole_frames: Callable[[int], Sequence[np.ndarray]] | None = None):
        """halo_px: LR context pixels around each patch (None: the network's receptive radius,
        the least that gives whole-frame inference's pixels). whole_frame_at: run the network
        once on the whole luma plane, and cut the boxes out of it, when the boxes' haloed area
        reaches this share of the frame (the network's cost is
        about proportional to the pixels it sees, so 1.0: whenever that is cheaper; the halo
        makes both give the same pixels, to float rounding). ``inf``: always patch by patch.
        whole_frames: stream index -> that frame's whole-frame output (Y, U, V, as
        ``upscale_frame`` gives it) computed beforehand; every box is then cut from it and the
        network does not run (the quality benchmark, whose many runs share one cached pass)."""
        if halo_px is None:
            halo_px = model.receptive_radius
        if halo_px < 0:
            raise ConfigError(f"halo_px must be >= 0, got {halo_px}")
        if halo_px < model.receptive_radius:
            log.warning("halo_px=%d is below the network's receptive radius %d: patch seams possible",
                        halo_px, model.receptive_radius)
        self.model, self.halo_px = model, halo_px
        self.runner = SRRunner(model, precision, max_batch)
        self.whole_frame_at = whole_frame_at
        self.whole_frame_calls = 0  # calls served by one whole-plane pass
        self.whole_frames = whole_frames

    def set_threads(self, threads: int) -> None:
        """Threads the network may use per call (``SRPool`` gives its workers one each)."""
        self.runner.set_threads(threads)

    @property
    def scale(self) -> int:
        return self.model.scale

    def __call__(self, frame: CodedFrame, boxes: np.ndarray, scale: int) -> list[HRPatch]:
        if scale != self.model.scale:
            raise ConfigError(f"SR model is x{self.model.scale}, asked for x{scale}")
        boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
        if len(boxes) == 0:
            return []
        bad = (boxes[:, 0] < 0) | (boxes[:, 2] < 0) | (boxes[:, 1] > frame.height) | (
            boxes[:, 3] > frame.width) | (boxes[:, 1] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 2])
        if bad.any():
            raise ConfigError(f"boxes must lie inside the {frame.width}x{frame.height} frame and be "
                              f"non-empty, got {boxes[bad][0].tolist()}")
        if self.whole_frames is not None:
            from ..reuse import crop_patches

            return crop_patches(self.whole_frames(frame.index), boxes, scale)
        grown = _halo_boxes(boxes, self.halo_px, frame.height, frame.width)
        seen = float(((grown[:, 1] - grown[:, 0]) * (grown[:, 3] - grown[:, 2])).sum())
        if seen >= self.whole_frame_at * frame.height * frame.width:
            self.whole_frame_calls += 1
            hr = self.runner.upscale_y(frame.y)
            ys = [np.ascontiguousarray(hr[scale * y0:scale * y1, scale * x0:scale * x1]) for y0, y1, x0, x1 in boxes]
        else:
            ys = upscale_boxes(frame.y, boxes, scale, self.halo_px, self.runner.run, grown)
        cboxes = np.array([chroma_box(b) for b in boxes], np.int64)
        uv = upscale_boxes(np.stack([frame.u, frame.v]), cboxes, scale, CHROMA_HALO_PX,
                           lambda t: bicubic_planes_np(t, scale))
        return [(y, c[0], c[1]) for y, c in zip(ys, uv)]


def upscale_frame(runner: SRRunner, y: np.ndarray, u: np.ndarray, v: np.ndarray):
    """Whole-frame SR: Y by the network, U and V bicubic; uint8 planes, scale x each."""
    s = runner.model.scale
    uv = _to_uint8(bicubic_planes_np(_to_float(np.stack([u, v])), s))
    return runner.upscale_y(y), uv[0], uv[1]
