"""A quality run's inputs per clip: the sources measured, the decoded (and gated) LR stream, the
HR ground truth, the network's whole-frame output (cached on disk), its measured CPU cost, the
chunk graphs (built once per clip and options) and the node biases."""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Sequence

import numpy as np

from ...errors import ConfigError
from ...graph import build_graph, node_bias_for
from ...pipeline.options import PipelineOptions
from ...pipeline.runners import warm_up
from ...reuse import BicubicPatchSource, gate_frames
from ...schedule import chunks_of
from ...stream import VideoSource
from ...types import Chunk, CodedFrame, PatchGrid
from ..corpus import load_hr, sha256_file
from .settings import QUICK_CLIPS, QualitySettings

Tick = Callable[..., None]


class ClipInputs:
    """What every run on one clip (one LR encoding) reads.

    frames: the decoded stream through the reuse gate (every run, graph and reconstruction sees
    the gated stream, as ``enhance`` does); ungated: the decoded stream, for the gate's ablation.
    chunks: the stream cut as ``plan_stream`` cuts it. sr: the network's whole-frame output of
    every LR frame (cached; the ``all`` result, and the anchors' patches are cut from it).
    """

    def __init__(self, entry: dict, settings: QualitySettings, cache_dir: str,
                 tick: Tick = lambda text, advance=0.0: None) -> None:
        self.entry, self.s, self.tick = entry, settings, tick
        self.name = entry["name"]
        clip_dir = entry["dir"]
        lr_path = os.path.join(clip_dir, entry["lr"][settings.encoding]["file"])
        with VideoSource(lr_path, transcode=True) as src:
            frames: list[CodedFrame] = []
            for f in src:
                frames.append(f)
                if settings.max_frames and len(frames) >= settings.max_frames:
                    break
        self.ungated = frames
        self.hr = load_hr(clip_dir)
        s = settings.scale
        lh, lw = frames[0].y.shape
        if self.hr[0].shape[1:] != (s * lh, s * lw):
            raise ConfigError(f"{self.name}: HR {self.hr[0].shape[1:]} is not {s}x the LR {lh}x{lw}")
        self.config = settings.reuse_config()
        self.patch_px = settings.grid_px(lw, lh)
        # The compiled kernels (gate, graph, greedy, reuse) are compiled or loaded before any
        # step is timed, as a live run does before its first frame.
        warm_up(PipelineOptions(scale=s, loop=settings.loop, patch_px=self.patch_px, gate=settings.gate),
                BicubicPatchSource())
        c0 = time.process_time()
        self.frames = frames = list(gate_frames(frames, settings.gate))
        self.gate_cpu_s = (time.process_time() - c0) / max(len(frames), 1)  # per frame
        self.chunks: list[Chunk] = list(chunks_of(frames, settings.chunk_frames, self.patch_px))
        self.chunk_index = {c.start: i for i, c in enumerate(self.chunks)}
        self.cache = os.path.join(cache_dir, self.name, settings.encoding)
        os.makedirs(self.cache, exist_ok=True)
        self.sr = self._sr_frames(lr_path)
        self._graphs: dict[tuple, object] = {}
        self._graph_cpu: dict[tuple, float] = {}
        self._biases: dict[str, object] = {}
        self.sr_cpu = self._sr_cost()

    def ref(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.hr[0][index], self.hr[1][index], self.hr[2][index]

    def sr_planes(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.sr[0][index], self.sr[1][index], self.sr[2][index]

    def patch_source(self):
        """The SR patch source ``enhance`` uses (``SRPatchSource``), cutting every anchor from
        the cached whole-frame pass (the same pixels as the network on the patch with its halo,
        the halo being at least the network's receptive radius)."""
        from ...sr import SRPatchSource, open_model

        return SRPatchSource(open_model(self.s.scale), whole_frames=self.sr_planes)

    def _sr_frames(self, lr_path: str):
        """Whole-frame SR of every LR frame, cached on disk (keyed by the LR file and weights)."""
        from ...sr import load_model
        from ...sr.model import default_path
        from ...sr.patches import SRRunner, upscale_frame

        weights = default_path(self.s.scale)
        key = {"lr": sha256_file(lr_path), "weights": sha256_file(str(weights)), "frames": len(self.frames)}
        key_path = os.path.join(self.cache, "sr_key.json")
        paths = [os.path.join(self.cache, f"sr_{c}.npy") for c in "yuv"]
        if os.path.exists(key_path) and all(os.path.exists(p) for p in paths):
            with open(key_path) as fh:
                if json.load(fh) == key:
                    return tuple(np.load(p, mmap_mode="r") for p in paths)
        runner = SRRunner(load_model(self.s.scale))
        arrays = None
        for t, f in enumerate(self.frames):
            planes = upscale_frame(runner, f.y, f.u, f.v)
            if arrays is None:
                arrays = [np.lib.format.open_memmap(p + ".partial", "w+", np.uint8, (len(self.frames),) + pl.shape)
                          for p, pl in zip(paths, planes)]
            for a, pl in zip(arrays, planes):
                a[t] = pl
            self.tick(f"{self.name}: SR on frame {t + 1}/{len(self.frames)}")
        for a, p in zip(arrays, paths):
            a.flush()
            os.replace(p + ".partial", p)
        with open(key_path, "w") as fh:
            json.dump(key, fh)
        return tuple(np.load(p, mmap_mode="r") for p in paths)

    def _sr_cost(self) -> dict:
        """The network's CPU cost on this clip, measured (after a warm-up) on its middle frame:
        seconds per LR pixel of anchor patches (haloed, batched, as ``enhance`` runs them) and
        seconds per whole frame (one pass, as all-frame SR runs). The benchmark's runs take
        their SR output from the cached whole-frame pass, so their SR cost is this model."""
        from ...sr import SRPatchSource, open_model
        from ...sr.patches import upscale_frame

        source = SRPatchSource(open_model(self.s.scale), whole_frame_at=float("inf"))
        f = self.frames[len(self.frames) // 2]
        boxes = PatchGrid(self.patch_px, f.height, f.width).boxes()
        source(f, boxes[:1], self.s.scale)
        c0 = time.process_time()
        source(f, boxes, self.s.scale)
        per_px = (time.process_time() - c0) / (f.width * f.height)
        upscale_frame(source.runner, f.y, f.u, f.v)
        c0 = time.process_time()
        upscale_frame(source.runner, f.y, f.u, f.v)
        return {"patch_s_per_lr_px": per_px, "frame_s": time.process_time() - c0}

    # -- graphs and node biases ----------------------------------------------------------------
    def node_bias(self, kind: str):
        """The graph's node_bias callable for a bias kind (one per clip): None (texture), the
        predictor shipped beside the weights (texture, with a warning, when there is none), or the
        oracle (the network's output of every frame, cached above)."""
        if kind not in self._biases:
            if kind == "oracle":
                from ...sr.biasfit import OracleBias

                self._biases[kind] = OracleBias(self.sr_planes, self.config)
            else:
                self._biases[kind] = node_bias_for(kind, self.s.scale)
        return self._biases[kind]

    def _graph_key(self, ci: int, bias: str | None, edge_weights: bool, texture: bool, retention: bool,
                   blend: bool) -> tuple:
        return ci, bias or self.s.node_bias, bool(edge_weights), bool(texture), bool(retention), bool(blend)

    def graph(self, ci: int, bias: str | None = None, *, edge_weights: bool = True, texture: bool = True,
              retention: bool = True, blend: bool = True):
        """Chunk ``ci``'s graph with a node bias kind (the settings' own when None) and the
        ablation options, built once per clip (``build_graph`` at the run's scale and with the
        run's anchor weight, what ``plan_stream`` builds frame by frame). blend=False: the graph
        without the anchors' blend with reuse (the ablation)."""
        key = self._graph_key(ci, bias, edge_weights, texture, retention, blend)
        if key not in self._graphs:
            c0 = time.process_time()
            self._graphs[key] = build_graph(self.chunks[ci], node_bias=self.node_bias(key[1]),
                                            edge_weights=edge_weights, texture=texture,
                                            scale=self.s.scale, retention=retention,
                                            anchor_weight=self.config.anchor_weight if blend else None)
            self._graph_cpu[key] = time.process_time() - c0
        return self._graphs[key]

    def graph_cpu_s(self, ci: int, bias: str | None = None, *, edge_weights: bool = True,
                    texture: bool = True, retention: bool = True, blend: bool = True) -> float:
        """CPU seconds the chunk's graph took to build (0 when it was not built)."""
        return self._graph_cpu.get(self._graph_key(ci, bias, edge_weights, texture, retention, blend), 0.0)


def select_sources(settings: QualitySettings, clip_paths: Sequence[str] | None = None, quick: bool = False,
                   only: Sequence[str] | None = None) -> list:
    """The clip sources a run measures: the user's clips, else the corpus (QUICK_CLIPS when quick,
    the named ones with ``only``). Raises (one line: expected, got) on an unknown name, a missing
    clip file, or when not one source is available: a run that can measure nothing stops."""
    from ..corpus import default_sources, require_available, user_sources

    if clip_paths:
        sources = user_sources(clip_paths, settings.max_frames or 120)
    else:
        sources = default_sources()
        if quick:
            sources = [s for s in sources if s.name in QUICK_CLIPS]
        if only:
            unknown = sorted(set(only) - {s.name for s in sources})
            if unknown:
                raise ConfigError(f"expected corpus clip names in {[s.name for s in sources]}, got {unknown}")
            sources = [s for s in sources if s.name in only]
    require_available(sources)
    return sources
