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

Cost: a few passes over the LR pixels (numba), a few arithmetic operations per pixel, summed
per 4x4 block before they reach a patch; no network.
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
from .texture import frame_texture

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
NODE_BIASES = ("predictor", "texture", "oracle", "intra")
# The ones a stream can plan with ("oracle" runs the network on every patch: evaluation only).
STREAM_NODE_BIASES = tuple(k for k in NODE_BIASES if k != "oracle")


@njit(cache=True)
def _padded(plane, out):  # pragma: no cover - compiled
    """out (H+2, W+2) float32 <- plane with a one-pixel border repeating its edges."""
    h, w = plane.shape
    for y in range(h):
        for x in range(w):
            out[y + 1, x + 1] = plane[y, x]
    _pad_edges(out)


@njit(cache=True)
def _pad_edges(out):  # pragma: no cover - compiled
    h2, w2 = out.shape
    for y in range(1, h2 - 1):
        out[y, 0] = out[y, 1]
        out[y, w2 - 1] = out[y, w2 - 2]
    for x in range(w2):
        out[0, x] = out[1, x]
        out[h2 - 1, x] = out[h2 - 2, x]


@njit(cache=True)
def _residual(cur, ref, mv, intra, sub, res):  # pragma: no cover - compiled
    """res (H+2, W+2) float32, interior <- cur minus the reference displaced by the whole-pel
    vector (each sample clamped to the plane), 0 on intra pixels; the border repeats the edges.
    A block of the plane (4 / sub pixels a side) follows one luma 4x4 block's vector."""
    h, w = cur.shape
    q = 4 // sub
    for by in range(0, h, q):
        y1 = min(by + q, h)
        for bx in range(0, w, q):
            x1 = min(bx + q, w)
            ly, lx = (by * sub) >> 2, (bx * sub) >> 2
            if intra[ly, lx]:
                for y in range(by, y1):
                    for x in range(bx, x1):
                        res[y + 1, x + 1] = 0.0
                continue
            dy = (np.int64(mv[ly, lx, 1]) + 2 * sub) >> (1 + sub)
            dx = (np.int64(mv[ly, lx, 0]) + 2 * sub) >> (1 + sub)
            if by + dy >= 0 and bx + dx >= 0 and y1 + dy <= h and x1 + dx <= w:
                for y in range(by, y1):
                    crow, rrow, orow = cur[np.uintp(y)], ref[np.uintp(y + dy)], res[np.uintp(y + 1)]
                    for x in range(bx, x1):
                        orow[np.uintp(x + 1)] = np.float32(crow[np.uintp(x)]) - np.float32(rrow[np.uintp(x + dx)])
            else:
                for y in range(by, y1):
                    sy = min(max(y + dy, 0), h - 1)
                    for x in range(bx, x1):
                        res[y + 1, x + 1] = np.float32(cur[y, x]) - np.float32(ref[sy, min(max(x + dx, 0), w - 1)])
    _pad_edges(res)


@njit(cache=True, fastmath=True)
def _block_energies(pic, res, sub, blocks, col0):  # pragma: no cover - compiled
    """Add, per luma 4x4 block, the plane's per-pixel energies to ``blocks[:, :, col0 + k]``:
    k = 0 squared 5-point Laplacian of the picture, 1 squared gradient (forward differences),
    2 squared residual, 3 squared Laplacian of the residual. pic, res: (H+2, W+2) padded.
    A row's energies are computed in plain loops (they vectorise), then summed per block."""
    h, w = pic.shape[0] - 2, pic.shape[1] - 2
    q = 4 // sub
    e = np.empty((4, w + q), np.float32)
    e[:, w:] = 0.0
    nb = (w + q - 1) // q
    for y in range(h):
        ly = (y * sub) >> 2
        a0, a1, a2 = pic[y], pic[y + 1], pic[y + 2]
        r0, r1, r2 = res[y], res[y + 1], res[y + 2]
        e0, e1, e2, e3 = e[0], e[1], e[2], e[3]
        for xi in range(w):  # unsigned indices: no negative-index handling, so it vectorises
            x = np.uintp(xi)
            x1, x2 = x + np.uintp(1), x + np.uintp(2)
            c = a1[x1]
            lap = np.float32(4.0) * c - a0[x1] - a2[x1] - a1[x] - a1[x2]
            gx = c - a1[x2]
            gy = c - a2[x1]
            r = r1[x1]
            rl = np.float32(4.0) * r - r0[x1] - r2[x1] - r1[x] - r1[x2]
            e0[x] = lap * lap
            e1[x] = gx * gx + gy * gy
            e2[x] = r * r
            e3[x] = rl * rl
        brow = blocks[ly]
        for b in range(nb):
            x0 = np.uintp(b * q)
            out = brow[b]
            for k in range(4):
                ek = e[k]
                acc = ek[x0]
                for j in range(1, q):
                    acc += ek[x0 + np.uintp(j)]
                out[col0 + k] += acc


@njit(cache=True)
def _block_features(blocks, counts, intra, subpel, row_base, col_of, out):  # pragma: no cover
    """out (N, K) += each luma 4x4 block's energies, into the FEATURES columns its coding picks
    (intra / inter / inter landing between HR samples); the block counts in the patch of its
    first pixel (exact when patch_px is a multiple of 4)."""
    bh, bw = intra.shape
    for i in range(bh):
        for j in range(bw):
            p = row_base[4 * i] + col_of[4 * j]
            e = blocks[i, j]
            n = counts[i, j]
            if intra[i, j]:
                out[p, 0] += n
                out[p, 1] += e[0]
                out[p, 2] += e[1]
                out[p, 9] += e[4]
            else:
                out[p, 3] += n
                out[p, 4] += e[2]
                out[p, 5] += e[3]
                out[p, 6] += e[0]
                out[p, 10] += e[4]
                out[p, 11] += e[6]
                if subpel[i, j]:
                    out[p, 7] += n
                    out[p, 8] += e[0]


@lru_cache(maxsize=16)
def _lookup(patch_px: int, cols: int, height: int, width: int, sub: int):
    row_base = (np.arange(height) * sub // patch_px) * cols
    col_of = np.arange(width) * sub // patch_px
    return row_base, col_of


def patch_features(frame: CodedFrame, ref: CodedFrame | None, grid: PatchGrid, scale: int) -> np.ndarray:
    """float64 (N, K): the FEATURES of every patch of ``frame`` (all intra without ``ref`` or at a
    key frame); ``scale`` decides which vectors land between HR samples.

    Per plane, the residual and the padded picture are laid out once; the per-pixel energies are
    summed per luma 4x4 block (chroma: the 2x2 block that follows it), and each block's sums go
    to its patch in the columns its coding picks. Patch sizes that are not a multiple of 4 put a
    block wholly in the patch of its first pixel."""
    out = np.zeros((grid.n_patches, K))
    motion = frame.motion
    all_intra = ref is None or frame.is_key or ref.y.shape != frame.y.shape
    intra = (np.ones(motion.intra.shape, np.bool_) if all_intra
             else np.ascontiguousarray(motion.intra, np.bool_))
    mv = np.ascontiguousarray(motion.mv, np.int16)
    ref = frame if all_intra else ref
    bh, bw = intra.shape
    blocks = np.zeros((bh, bw, 8), np.float32)  # luma lap2, grad2, res2, reslap2; chroma the same
    for plane, sub, col0 in (("y", 1, 0), ("u", 2, 4), ("v", 2, 4)):
        cur = np.ascontiguousarray(getattr(frame, plane))
        h, w = cur.shape
        pic = np.empty((h + 2, w + 2), np.float32)
        _padded(cur, pic)
        res = np.zeros((h + 2, w + 2), np.float32)
        if not all_intra:
            _residual(cur, np.ascontiguousarray(getattr(ref, plane)), mv, intra, sub, res)
        _block_energies(pic, res, sub, blocks, col0)
    h, w = frame.y.shape
    counts = np.minimum(4, h - 4 * np.arange(bh))[:, None] * np.minimum(4, w - 4 * np.arange(bw))[None, :]
    subpel = ((mv.astype(np.int64) * scale) % 4 != 0).any(axis=2)
    row_base, col_of = _lookup(grid.patch_px, grid.cols, h, w, 1)
    _block_features(blocks, counts.astype(np.float64), intra, subpel, row_base, col_of, out)
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


def intra_texture(frame: CodedFrame, ref: CodedFrame | None, grid: PatchGrid) -> np.ndarray:
    """The ``intra`` node bias: the texture term of the intra pixels (key frames, intra and gated
    blocks), and of each inter block times its ``MotionField.fresh`` share, the error the reuse
    gate measured one reuse step adding there (docs/method.md §2.2, §2.6); without shares (no
    gate) an inter pixel adds nothing of its own."""
    return frame_texture(frame, ref, grid, inter=False)


def node_bias_for(kind: str, scale: int, weights: str | Path | None = None):
    """The ``node_bias`` callable of a graph for a bias kind: "predictor" (the predictor beside
    ``weights``, default the shipped network for ``scale``; the texture term with a warning when
    there is none), "texture" (None: the texture term), "intra" (the texture term of the intra
    pixels only). "oracle" runs the network on every patch
    and is built by the quality benchmark only (``anchorsr.sr.biasfit.OracleBias``)."""
    if kind == "texture":
        return None
    if kind == "intra":
        return intra_texture
    if kind == "predictor":
        return predictor_for(scale, weights)
    if kind == "oracle":
        raise ConfigError("the oracle node bias runs the network on every patch: it is for "
                         "'anchorsr bench quality' only; expected 'predictor' or 'texture'")
    raise ConfigError(f"expected a node bias in {list(NODE_BIASES)}, got {kind!r}")
