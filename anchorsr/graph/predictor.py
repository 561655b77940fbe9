"""A node bias that predicts what the shipped SR network restores (docs/method.md §2.1).

The texture term (``texture.frame_texture``) measures what a bicubic-down / bilinear-up round
trip loses; the quantity the DAG needs is what an anchor at the node changes: the squared
difference between the network's output and what one reuse step gives there when the previous
frame is the network's own output (the *oracle* bias, ``anchorsr.sr.biasfit.oracle_bias``). This
module predicts that quantity from the newly coded signal, per patch, without the network:

``b_t[p] = sum_k coef_k * F_k[p]`` (coefficients >= 0), where the ``F_k`` (``FEATURES``) are
per-patch sums of per-pixel energies of the decoded LR frame and of its whole-pel residual:

* luma, intra pixels: count, squared Laplacian, squared gradient;
* luma, inter pixels: count, squared residual, squared Laplacian of the residual, squared
  Laplacian of the picture, and the count and squared Laplacian of the pixels whose vector lands
  between HR samples (``scale`` x the quarter-pel vector is not whole: motion compensation
  interpolates, so it blurs what the network added in the reference);
* chroma (U + V): squared Laplacian over intra and over inter pixels, squared residual.

The coefficients are fitted offline per weight file (``anchorsr.sr.biasfit``) and ship beside
it as ``NAME.bias.json`` (``bias_path``), with their contract: format, scale, the features in
order, the weight file's SHA-256, the fit data (photos with hashes, clip settings) and the fit
figures. ``load_predictor`` checks that contract and raises ``ModelError`` (one line) when it
does not hold; ``predictor_for`` is the lenient lookup the pipeline uses: no file beside the
weights means the texture term, with a warning.

Cost: one pass over the LR pixels (numba), a few arithmetic operations per pixel; no network.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from numba import njit

from ..errors import ConfigError, ModelError
from ..types import CodedFrame, PatchGrid

log = logging.getLogger(__name__)

FORMAT = "anchorsr-node-bias-predictor"
FORMAT_VERSION = 1
FEATURES: tuple[str, ...] = (
    "y_intra_count", "y_intra_lap2", "y_intra_grad2",
    "y_inter_count", "y_inter_res2", "y_inter_reslap2", "y_inter_lap2",
    "y_subpel_count", "y_subpel_lap2",
    "uv_intra_lap2", "uv_inter_lap2", "uv_inter_res2",
)
K = len(FEATURES)
TARGET = ("per patch, the sum over its HR Y, U and V samples of (network output - one reuse step "
          "from the network's output of the previous frame)^2; key frames and intra pixels: "
          "(network output - bicubic upsampling)^2")
NODE_BIASES = ("predictor", "texture", "oracle")


@njit(cache=True, inline="always")
def _pel(d):  # pragma: no cover - compiled
    """Quarter-pel -> whole pel, halves up (as ``texture._pel`` for one luma pixel per pixel)."""
    return (np.int64(d) + 2) >> 2


@njit(cache=True)
def _residual(cur, ref, mv, intra, sub, res):  # pragma: no cover - compiled
    """res (H, W) float32 <- cur minus the reference displaced by the whole-pel vector (each
    sample clamped to the plane); 0 on intra pixels. sub: luma pixels per plane pixel."""
    h, w = cur.shape
    for y in range(h):
        ly = (y * sub) >> 2
        for x in range(w):
            lx = (x * sub) >> 2
            if intra[ly, lx]:
                res[y, x] = 0.0
                continue
            sy = min(max(y + ((np.int64(mv[ly, lx, 1]) + 2 * sub) >> (1 + sub)), 0), h - 1)
            sx = min(max(x + ((np.int64(mv[ly, lx, 0]) + 2 * sub) >> (1 + sub)), 0), w - 1)
            res[y, x] = np.float32(cur[y, x]) - np.float32(ref[sy, sx])


@njit(cache=True, inline="always")
def _lap(a, y, x, h, w):  # pragma: no cover - compiled
    """5-point Laplacian of plane a at (y, x), edges repeated."""
    c = np.float32(a[y, x])
    return (np.float32(4.0) * c - np.float32(a[max(y - 1, 0), x]) - np.float32(a[min(y + 1, h - 1), x])
            - np.float32(a[y, max(x - 1, 0)]) - np.float32(a[y, min(x + 1, w - 1)]))


@njit(cache=True)
def _luma_features(cur, res, mv, intra, scale, row_base, col_of, out):  # pragma: no cover
    """Accumulate the luma features (columns 0..8 of FEATURES) of every pixel into out (N, K)."""
    h, w = cur.shape
    for y in range(h):
        ly = y >> 2
        rb = row_base[y]
        for x in range(w):
            lx = x >> 2
            p = rb + col_of[x]
            lap = _lap(cur, y, x, h, w)
            if intra[ly, lx]:
                c = np.float32(cur[y, x])
                gx = c - np.float32(cur[y, min(x + 1, w - 1)])
                gy = c - np.float32(cur[min(y + 1, h - 1), x])
                out[p, 0] += 1.0
                out[p, 1] += lap * lap
                out[p, 2] += gx * gx + gy * gy
                continue
            r = res[y, x]
            rl = _lap(res, y, x, h, w)
            out[p, 3] += 1.0
            out[p, 4] += r * r
            out[p, 5] += rl * rl
            out[p, 6] += lap * lap
            if (np.int64(mv[ly, lx, 0]) * scale) % 4 != 0 or (np.int64(mv[ly, lx, 1]) * scale) % 4 != 0:
                out[p, 7] += 1.0
                out[p, 8] += lap * lap


@njit(cache=True)
def _chroma_features(cur, res, intra, row_base, col_of, out):  # pragma: no cover - compiled
    """Accumulate the chroma features (columns 9..11) of one chroma plane into out (N, K)."""
    h, w = cur.shape
    for y in range(h):
        ly = y >> 1
        rb = row_base[y]
        for x in range(w):
            p = rb + col_of[x]
            lap = _lap(cur, y, x, h, w)
            if intra[ly, x >> 1]:
                out[p, 9] += lap * lap
            else:
                r = res[y, x]
                out[p, 10] += lap * lap
                out[p, 11] += r * r


@lru_cache(maxsize=16)
def _lookup(patch_px: int, cols: int, height: int, width: int, sub: int):
    row_base = (np.arange(height) * sub // patch_px) * cols
    col_of = np.arange(width) * sub // patch_px
    return row_base, col_of


def patch_features(frame: CodedFrame, ref: CodedFrame | None, grid: PatchGrid, scale: int) -> np.ndarray:
    """float64 (N, K): the FEATURES of every patch of ``frame`` (all intra without ``ref`` or at a
    key frame); ``scale`` decides which vectors land between HR samples."""
    out = np.zeros((grid.n_patches, K))
    motion = frame.motion
    all_intra = ref is None or frame.is_key or ref.y.shape != frame.y.shape
    intra = (np.ones(motion.intra.shape, np.bool_) if all_intra
             else np.ascontiguousarray(motion.intra, np.bool_))
    mv = np.ascontiguousarray(motion.mv, np.int16)
    ref = frame if all_intra else ref
    for plane, sub in (("y", 1), ("u", 2), ("v", 2)):
        cur = np.ascontiguousarray(getattr(frame, plane))
        res = np.zeros(cur.shape, np.float32)
        if not all_intra:
            _residual(cur, np.ascontiguousarray(getattr(ref, plane)), mv, intra, sub, res)
        row_base, col_of = _lookup(grid.patch_px, grid.cols, cur.shape[0], cur.shape[1], sub)
        if sub == 1:
            _luma_features(cur, res, mv, intra, int(scale), row_base, col_of, out)
        else:
            _chroma_features(cur, res, intra, row_base, col_of, out)
    return out


@dataclass(frozen=True)
class BiasPredictor:
    """The fitted predictor of one weight file: ``b = features @ coef`` (coef >= 0).

    Callable as a node bias: ``predictor(frame, ref, grid) -> float64 (N,)``.
    """

    scale: int
    coef: np.ndarray
    contract: dict = field(default_factory=dict)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, np.float64) @ self.coef

    def __call__(self, frame: CodedFrame, ref: CodedFrame | None, grid: PatchGrid) -> np.ndarray:
        return self.predict(patch_features(frame, ref, grid, self.scale))


def bias_path(weights: str | Path) -> Path:
    """Where the predictor of a weight file lives: ``NAME.bias.json`` beside ``NAME.safetensors``."""
    p = Path(weights)
    return p.with_name(p.name[:-len(".safetensors")] + ".bias.json" if p.name.endswith(".safetensors")
                       else p.name + ".bias.json")


def check_contract(contract: dict, path: Path, scale: int | None = None) -> np.ndarray:
    """The coefficients of a predictor contract, or ModelError naming what does not hold."""
    if not isinstance(contract, dict) or contract.get("format") != FORMAT:
        raise ModelError(f"{path}: expected a node-bias predictor file (format {FORMAT!r}), "
                         f"got format {contract.get('format') if isinstance(contract, dict) else None!r}")
    if contract.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: expected format_version {FORMAT_VERSION}, got {contract.get('format_version')!r}")
    if scale is not None and contract.get("scale") != scale:
        raise ModelError(f"{path}: expected a predictor for scale {scale}, got scale {contract.get('scale')!r}")
    if list(contract.get("features", [])) != list(FEATURES):
        raise ModelError(f"{path}: expected the features {list(FEATURES)}, got {contract.get('features')!r}")
    try:
        coef = np.asarray(contract.get("coef"), np.float64)
    except (TypeError, ValueError):
        coef = np.empty(0)
    if coef.shape != (K,) or not np.all(np.isfinite(coef)) or np.any(coef < 0) or not np.any(coef > 0):
        raise ModelError(f"{path}: expected {K} finite non-negative coefficients (not all 0), "
                         f"got {contract.get('coef')!r}")
    return coef


def load_predictor(path: str | Path, scale: int | None = None, weights: str | Path | None = None) -> BiasPredictor:
    """The predictor in ``path``; ModelError (one line) when the file is missing, unreadable or
    its contract does not hold (wrong format, scale, features or coefficients). ``weights``: the
    weight file it is used with; a different SHA-256 than the one it was fitted to logs a
    warning (refit with ``anchorsr train --refit-bias``)."""
    path = Path(path)
    try:
        contract = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"expected a node-bias predictor file at {path}, got none "
                         f"(make one with: anchorsr train --refit-bias)") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: expected a JSON node-bias predictor, got an unreadable file ({exc})") from None
    coef = check_contract(contract, path, scale)
    if weights is not None and Path(weights).is_file():
        from ..envinfo import sha256_file

        if contract.get("weights_sha256") != sha256_file(str(weights)):
            log.warning("%s was fitted to other weights than %s; refit it (anchorsr train --refit-bias)",
                        path, weights)
    return BiasPredictor(int(contract["scale"]), coef, contract)


def predictor_for(scale: int, weights: str | Path | None = None) -> BiasPredictor | None:
    """The predictor shipped beside ``weights`` (default: the shipped network for ``scale``), or
    None with a warning when there is none (the graph then uses the texture term). A file that is
    there but breaks its contract raises ModelError."""
    if weights is None:
        weights = Path(__file__).resolve().parents[1] / "sr" / "weights" / f"repsr_x{scale}.safetensors"
    path = bias_path(weights)
    if not path.is_file():
        log.warning("no node-bias predictor at %s: the graph uses the texture term", path)
        return None
    return load_predictor(path, scale, weights)


def node_bias_for(kind: str, scale: int, weights: str | Path | None = None):
    """The ``node_bias`` callable of a graph for a bias kind: "predictor" (the predictor beside
    ``weights``, default the shipped network for ``scale``; the texture term with a warning when
    there is none), "texture" (None: the texture term). "oracle" runs the network on every patch
    and is built by the quality benchmark only (``anchorsr.sr.biasfit.OracleBias``)."""
    if kind == "texture":
        return None
    if kind == "predictor":
        return predictor_for(scale, weights)
    if kind == "oracle":
        raise ConfigError("the oracle node bias runs the network on every patch: it is for "
                         "'anchorsr bench quality' only; expected 'predictor' or 'texture'")
    raise ConfigError(f"expected a node bias in {list(NODE_BIASES)}, got {kind!r}")
