"""What a quality run measures: the settings, the methods and budgets, and the reduced run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ...errors import ConfigError
from ...graph import NODE_BIASES
from ...reuse import ReuseConfig
from ...schedule import available_schedulers
from ...types import default_patch_px
from .. import nemo  # noqa: F401  (registers the benchmark-only scheduler "nemo")

BUDGETS = (1 / 60, 0.05, 0.10, 0.20)
BUDGETED = ("uniform", "neuroscaler", "key-uniform", "palantir", "dag-greedy", "dag-greedy-noweights",
            "dag-greedy-notexture", "dag-greedy-noretention", "dag-greedy-noblend", "nemo")
FIXED = ("keyframes",)
OURS = "dag-greedy"
SAVING_AGAINST = ("neuroscaler", "key-uniform", "palantir")
FIDELITY_BUDGET = 0.05

QUICK = dict(max_frames=30, chunk_frames=30, budgets=(1 / 60, 0.05), fidelity_random=3, vmaf_frames=10,
             ssim_every=10)
QUICK_CLIPS = ("bikes", "vtest", "bbb", "sim-pan-1080")


def budget_key(b: float) -> str:
    return f"{100 * b:.3g}%"


@dataclass(frozen=True)
class QualitySettings:
    """What one quality run measures. patch_px None: the pipeline's default for the clip's size
    (``types.default_patch_px``: 64, or 32 px below 1080p), but 128 px for LR wider than 1280 (a
    1080p LR clip at 64 px would take hours here)."""

    budgets: tuple[float, ...] = BUDGETS
    schedulers: tuple[str, ...] = BUDGETED + FIXED
    scale: int = 2
    loop: str = "closed"
    encoding: str = "rate"  # rate | crf
    patch_px: int | None = None
    chunk_frames: int = 60
    max_frames: int | None = None
    ssim_every: int = 4
    vmaf: bool = True
    vmaf_budget: float = 0.05
    vmaf_frames: int = 12
    nemo_max_lr_pixels: int = 640 * 360
    fidelity_chunks: int = 1
    fidelity_random: int = 8
    fidelity_max_lr_pixels: int = 960 * 544
    seed: int = 0
    node_bias: str = "intra"  # the graph schedulers' node bias (docs/method.md §2.1, §2.2); palantir: texture
    compare_biases: bool = True  # also dag-greedy and fidelity with every other node bias
    gate: bool = True  # the reuse gate (docs/method.md §1.1); False: the ablation
    oracle_gate: bool = True  # also reuse alone under an oracle gate (reads the truth: a bound)

    def __post_init__(self) -> None:
        unknown = [s for s in self.schedulers if s not in available_schedulers()]
        if unknown:
            raise ConfigError(f"expected scheduler names in {available_schedulers()}, got {unknown}")
        if not self.budgets or any(not 0 < b <= 1 for b in self.budgets):
            raise ConfigError(f"expected budgets in (0, 100%], got {list(self.budgets)}")
        if self.node_bias not in NODE_BIASES:
            raise ConfigError(f"expected a node bias in {list(NODE_BIASES)}, got {self.node_bias!r}")
        if self.encoding not in ("rate", "crf"):
            raise ConfigError(f"expected encoding 'rate' or 'crf', got {self.encoding!r}")

    def grid_px(self, lr_width: int, lr_height: int) -> int:
        if self.patch_px:
            return self.patch_px
        return default_patch_px(lr_height, lr_width) if lr_width <= 1280 else 128

    def reuse_config(self) -> ReuseConfig:
        return ReuseConfig(self.scale, self.loop)


def settings_json(settings: QualitySettings) -> dict:
    d = asdict(settings)
    d["budgets"] = [budget_key(b) for b in settings.budgets]
    d["reuse"] = {**asdict(settings.reuse_config()), "gate": settings.gate}
    return d
