"""The settings of one stream, shared by both runners (sequential and real-time)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..graph.predictor import STREAM_NODE_BIASES
from ..reuse import ReuseConfig
from ..sr.contract import resolve_engine
from ..types import PatchGrid


@dataclass(frozen=True)
class PipelineOptions:
    """What ``anchorsr enhance``/``serve`` do with one stream (the CLI's options).

    plan_path (client mode) replaces the scheduler. model: "default" (the shipped SR network for
    ``scale``), "bicubic" (stand-in, no network), or a path to a model file; device: where the
    network runs, "cpu" or "cuda" (never picked silently); sr_engine: what runs it, "auto",
    "numpy" or "torch" (``anchorsr.sr.contract.resolve_engine``).
    crf: x264 CRF of the output. preset / segment_s: x264 preset and HLS segment length
    (key-frame interval) of a live output (HLS or URL); a file output keeps the file profile.
    max_latency_s: added-latency target (deadline after decode); None: chunk duration + 1 s.
    patch_px: LR pixels per patch side; None: the default for each frame size (64, or 32 below
        1080p: ``types.default_patch_px``).
    realtime: deadlines and the drop policy apply (live input, real-time runner); False: every
        frame waits for its SR patches and nothing is dropped.
    kernel_threads / encoder_threads: threads of the reconstruction kernels (numba) and of the
        x264 encoder in the real-time runner; None leaves the libraries' defaults.
    audio: pass the input's first audio track through to the output, in sync (copied when the
        output container takes its codec, else encoded to AAC); False drops it.
    fps: override the input's frame rate (frames re-timed at it from the first one); None keeps
        the input's timestamps.
    node_bias: the graph's node bias (docs/method.md §2.1, §2.2): "intra" (the default: the
        texture term of intra pixels only), "texture" (of every newly coded pixel), or
        "predictor" (the predictor fitted to the model's weights, beside them; the texture term
        with a warning when there is none). ``palantir`` plans on the texture term whatever
        this says (the published model).
    lr_model: the closed loop's model of how the LR frame was made from the HR one
        (``ReuseConfig.down_filter``): "bicubic" (antialiased, the default) or "box".
    light: a real-time run under severe overload (frames dropped even with SR shed, see
        ``control.py``) rebuilds with the box model (about half the reconstruction's CPU with
        the bicubic one) until the SR budget is back at its target (default True; False keeps
        ``lr_model`` always, ``--no-light``).
    gate: the reuse gate (``anchorsr.reuse.gate``): blocks where reuse is expected to lose to
        bicubic upsampling are rebuilt by it, and the scheduler's graph knows; False reuses every
        inter block (ablation, ``--no-gate``).
    anchor_weight: ``ReuseConfig.anchor_weight``: on the inter blocks of a P frame an anchor is
        ``w * SR + (1 - w) * reuse``; 1 replaces (``--anchor-weight``); None: the shipped
        network's fitted weight at the scale (``reuse.reconstruct.ANCHOR_WEIGHTS``).
    """

    scale: int = 2
    loop: str = "closed"
    lr_model: str = "bicubic"
    scheduler: str = "dag-greedy"
    budget_fraction: float = 0.05
    chunk_frames: int = 60
    patch_px: int | None = None
    model: str = "default"
    device: str = "cpu"
    sr_engine: str = "auto"
    plan_path: str | None = None
    transcode: bool = True
    timeout_s: float = 10.0
    max_frames: int | None = None
    crf: float = 18.0
    preset: str = "ultrafast"
    segment_s: float = 2.0
    max_latency_s: float | None = None
    realtime: bool = True
    queue_frames: int | None = None
    kernel_threads: int | None = None
    encoder_threads: int | None = None
    audio: bool = True
    fps: float | None = None
    node_bias: str = "intra"
    gate: bool = True
    anchor_weight: float | None = None
    light: bool = True

    def __post_init__(self) -> None:
        if self.node_bias not in STREAM_NODE_BIASES:
            raise ConfigError(f"node bias must be one of {list(STREAM_NODE_BIASES)}, got {self.node_bias!r}")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        resolve_engine(self.sr_engine, None, self.device)  # a known engine that can run on the device
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"fps must be > 0, got {self.fps}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"max_frames must be >= 1, got {self.max_frames}")
        if not 0.0 <= self.budget_fraction <= 1.0:
            raise ConfigError(f"budget must lie in 0..1, got {self.budget_fraction}")
        if self.chunk_frames < 1:
            raise ConfigError(f"chunk_frames must be >= 1, got {self.chunk_frames}")
        if self.max_latency_s is not None and self.max_latency_s <= 0:
            raise ConfigError(f"max latency must be > 0 seconds, got {self.max_latency_s}")
        if self.segment_s <= 0:
            raise ConfigError(f"segment length must be > 0 seconds, got {self.segment_s}")
        self.reuse_config()
        if self.patch_px is not None:
            PatchGrid(self.patch_px, 1, 1)

    def reuse_config(self) -> ReuseConfig:
        return ReuseConfig(self.scale, self.loop, down_filter=self.lr_model, anchor_weight=self.anchor_weight)

    def latency_target_s(self, fps: float) -> float:
        return self.max_latency_s if self.max_latency_s is not None else self.chunk_frames / fps + 1.0


# The former names of the file and the live settings, now one type.
EnhanceOptions = LiveOptions = PipelineOptions
