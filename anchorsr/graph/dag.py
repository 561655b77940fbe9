"""The dependency graph of a chunk and its error recursion (docs/method.md §2).

Nodes are (frame t, patch p) pairs. ``W_t`` (N x N, sparse) says how much of each patch of frame
t is copied from each patch of frame t-1; ``b_t`` (N,) how much error plain upsampling adds for
what is newly coded in it. For an anchor mask ``m`` (1 off the anchors; at an anchor the share ``k_t[p]`` of its error
that anchoring leaves, 0 unless the reconstruction blends the anchor with reuse)::

    e_t = m_t * (b_t + W_t e_{t-1}),   J = sum_t sum_p e_t[p]

Given the output scale, ``W_t`` also counts how much of the reference's SR detail the
sub-pixel interpolation keeps (docs/method.md §2.3), so an anchor's effect fades along motion
as the measured one does.

with ``e_{-1}`` carried in from the previous chunk (it does not matter at a key frame, whose
``W_0`` is zero). Blocks the reuse gate sent to upsampling (docs/method.md §1.1) arrive marked
intra in the frames' motion fields, so they have no edge in ``W_t`` and an intra block's bias.

The anchors' blend (docs/method.md §1.2): on the inter blocks of a P frame the reconstruction
writes ``w * SR + (1 - w) * reuse`` instead of the network's output alone, so what is left of
the node's error (its distance to the network's output, the quantity ``e`` counts) is
``(1 - w) * (reuse - SR)``, energy ``(1 - w)^2`` of it. A node's keep share ``k_t[p]`` is that
times the share of the patch's pixels in inter blocks (intra and gated blocks are replaced).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from numba import njit

from ..errors import ConfigError
from ..types import Chunk, PatchGrid
from .motion import frame_edges, identity_weights, inter_share
from .texture import frame_texture


@dataclass(frozen=True)
class PackedGraph:
    """All frames' ``W_t`` as flat arrays, for compiled kernels.

    Row r of ``W_t`` (CSR) is ``indices[indptr[t, r]:indptr[t, r + 1]]`` with ``data`` alike;
    ``t_indptr``/``t_indices``/``t_data`` hold ``W_t^T`` the same way (row q lists the patches
    of frame t that copy from patch q of frame t-1). indptr: int64 (T, N+1); indices: int32.
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    t_indptr: np.ndarray
    t_indices: np.ndarray
    t_data: np.ndarray


@njit(cache=True)
def _transpose(n, indptr, indices, data):  # pragma: no cover - compiled
    """CSR of the transpose of an n x n CSR matrix; rows of the result list ascending columns."""
    nnz = indptr[n]
    t_indptr = np.zeros(n + 1, np.int64)
    for j in range(nnz):
        t_indptr[indices[j] + 1] += 1
    for q in range(n):
        t_indptr[q + 1] += t_indptr[q]
    fill = t_indptr[:n].copy()
    t_indices = np.empty(nnz, np.int32)
    t_data = np.empty(nnz)
    for p in range(n):
        for j in range(indptr[p], indptr[p + 1]):
            q = indices[j]
            t_indices[fill[q]] = p
            t_data[fill[q]] = data[j]
            fill[q] += 1
    return t_indptr, t_indices, t_data


def frame_arrays(w: sp.csr_matrix) -> tuple[np.ndarray, ...]:
    """One frame's kernel layout: (indptr, indices, data) of ``W_t`` and of ``W_t^T``."""
    w = sp.csr_matrix(w)
    w.sort_indices()
    csr = (w.indptr, w.indices, w.data)
    indptr, indices, data = (np.ascontiguousarray(csr[0], np.int64),
                             np.ascontiguousarray(csr[1], np.int32),
                             np.ascontiguousarray(csr[2], np.float64))
    return (indptr, indices, data, *_transpose(len(indptr) - 1, indptr, indices, data))


class _Packer:
    """Appends frames' ``frame_arrays`` to growing chunk-wide buffers, so that joining them
    into a PackedGraph at the end of a chunk copies nothing large."""

    def __init__(self) -> None:
        self.ptrs: tuple[list, list] = ([], [])
        self.bufs = [np.empty(0, np.int32), np.empty(0), np.empty(0, np.int32), np.empty(0)]
        self.nnz = 0

    def add(self, arrays: tuple[np.ndarray, ...]) -> None:
        nnz = int(arrays[0][-1])
        end = self.nnz + nnz
        if end > self.bufs[0].size:  # grow (doubling)
            cap = max(end, 2 * self.bufs[0].size, 1024)
            for i, buf in enumerate(self.bufs):
                grown = np.empty(cap, buf.dtype)
                grown[:self.nnz] = buf[:self.nnz]
                self.bufs[i] = grown
        for i, k in enumerate((1, 2, 4, 5)):
            self.bufs[i][self.nnz:end] = arrays[k]
        self.ptrs[0].append(arrays[0] + self.nnz)
        self.ptrs[1].append(arrays[3] + self.nnz)
        self.nnz = end

    def packed(self) -> PackedGraph:
        ind, dat, t_ind, t_dat = (b[:self.nnz] for b in self.bufs)
        return PackedGraph(np.stack(self.ptrs[0]), ind, dat, np.stack(self.ptrs[1]), t_ind, t_dat)


def _pack(mats: tuple[sp.csr_matrix, ...]) -> PackedGraph:
    packer = _Packer()
    for m in mats:
        packer.add(frame_arrays(m))
    return packer.packed()


@dataclass(frozen=True, eq=False)
class DependencyGraph:
    """The weighted DAG of one chunk.

    grid: the patch grid (N patches per frame).
    weights: T float64 CSR (N, N) matrices ``W_t``; ``W_0`` points into the frame before the
        chunk (zero at a key frame or at stream start). Entries in [0, 1], rows sum to <= 1.
    bias: float64 (T, N) texture complexities ``b_t`` (>= 0; squared 8-bit sample errors).
    chunk_start: stream index of the chunk's first frame.
    keep: float64 (T, N) in [0, 1), the share of its error a node keeps once anchored (the
        anchors' blend with reuse, ``anchor_keep``); None: 0 everywhere (an anchor replaces).
    """

    grid: PatchGrid
    weights: tuple[sp.csr_matrix, ...]
    bias: np.ndarray
    chunk_start: int = 0
    keep: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.grid.n_patches
        if self.bias.ndim != 2 or self.bias.shape[1] != n or self.bias.shape[0] != len(self.weights):
            raise ConfigError(f"expected bias of shape ({len(self.weights)}, {n}), got {self.bias.shape}")
        if self.keep is not None and (self.keep.shape != self.bias.shape
                                      or not np.all((self.keep >= 0) & (self.keep < 1))):
            raise ConfigError(f"expected keep shares in [0, 1) of shape {self.bias.shape}, got "
                              f"shape {self.keep.shape}")
        for w in self.weights:
            if w.shape != (n, n):
                raise ConfigError(f"expected {n}x{n} weight matrices, got {w.shape}")

    @property
    def n_frames(self) -> int:
        return len(self.weights)

    @property
    def n_patches(self) -> int:
        return self.grid.n_patches

    @cached_property
    def keep_shares(self) -> np.ndarray:
        """float64 (T, N): ``keep``, zeros when there is none."""
        if self.keep is None:
            return np.zeros(self.bias.shape)
        return np.ascontiguousarray(self.keep, np.float64)

    @cached_property
    def packed(self) -> PackedGraph:
        return _pack(tuple(sp.csr_matrix(w) for w in self.weights))

    @staticmethod
    def from_arrays(grid: PatchGrid, weights, bias, chunk_start: int = 0, keep=None) -> "DependencyGraph":
        """A graph from any sparse/dense ``W_t`` (tests, synthetic studies)."""
        mats = tuple(sp.csr_matrix(np.asarray(w.todense() if sp.issparse(w) else w, np.float64))
                     for w in weights)
        return DependencyGraph(grid, mats, np.asarray(bias, np.float64), chunk_start,
                               None if keep is None else np.asarray(keep, np.float64))


def anchor_keep(frame, ref, grid: PatchGrid, anchor_weight: float | None,
                share: np.ndarray | None = None) -> np.ndarray:
    """float64 (N,): the share of its error each patch of ``frame`` keeps once anchored, when the
    reconstruction blends anchors as ``anchor_weight * SR + (1 - anchor_weight) * reuse`` on the
    inter blocks of a P frame that has a reference (``ReuseConfig.anchor_weight``):
    ``(1 - anchor_weight)^2`` times the patch's share of inter pixels. 0 where the anchor
    replaces: key frames, frames without a reference, intra and gated blocks, or no blend
    (``anchor_weight`` None or 1). share: the frame's ``inter_share`` when already counted
    (``frame_edges`` gives it with the edge weights)."""
    if anchor_weight is None or anchor_weight >= 1 or frame.kind != "P" or ref is None:
        return np.zeros(grid.n_patches)
    if not 0 < anchor_weight:
        raise ConfigError(f"expected an anchor weight in (0, 1], got {anchor_weight}")
    return (1.0 - anchor_weight) ** 2 * (inter_share(frame, grid) if share is None else share)


class GraphBuilder:
    """Builds a chunk's graph one frame at a time, as frames are decoded.

    Live use: call ``add`` for each frame when it arrives (the per-frame work: edge weights and
    texture), then ``build`` when the chunk is complete (only the kernel layout is left).
    prev: the frame before the chunk (None at stream start). Options as in ``build_graph``.
    """

    def __init__(self, grid: PatchGrid, prev=None, *, edge_weights: bool = True,
                 texture: bool = True, texture_sample: int = 1, node_bias=None,
                 scale: int | None = None, retention: bool = True,
                 anchor_weight: float | None = None) -> None:
        self.grid, self.edge_weights, self.texture = grid, edge_weights, texture
        # The edges count detail retention only with edge weights, a scale, and not ablated.
        self.scale = scale if retention and edge_weights else None
        self.texture_sample = texture_sample
        self.node_bias = node_bias
        self.anchor_weight = anchor_weight
        self._blend = anchor_weight is not None and anchor_weight < 1  # keep shares to build
        self._ref = prev
        self._start: int | None = None
        self._weights: list[sp.csr_matrix] = []
        self._packer = _Packer()
        self._bias: list[np.ndarray] = []
        self._keep: list[np.ndarray] = []

    def add(self, frame) -> None:
        grid = self.grid
        if frame.height != grid.height or frame.width != grid.width:
            raise ConfigError(f"expected {grid.width}x{grid.height} frames, got "
                              f"{frame.width}x{frame.height} at frame {frame.index}")
        if self._start is None:
            self._start = frame.index
        w, share = frame_edges(frame, self._ref, grid, self.scale)
        if not self.edge_weights:
            w = identity_weights(w)
        self._weights.append(w)
        self._packer.add(frame_arrays(w))
        if not self.texture:
            bias = np.ones(grid.n_patches)
        elif self.node_bias is not None:
            bias = np.asarray(self.node_bias(frame, self._ref, grid), np.float64)
        else:
            bias = frame_texture(frame, self._ref, grid, sample=self.texture_sample)
        self._bias.append(bias)
        if self._blend:
            self._keep.append(anchor_keep(frame, self._ref, grid, self.anchor_weight, share))
        self._ref = frame

    def build(self) -> DependencyGraph:
        """The graph of the frames added so far (at least one)."""
        if not self._weights:
            raise ConfigError("expected at least one frame before building a graph, got none")
        keep = np.stack(self._keep) if self._blend else None
        graph = DependencyGraph(self.grid, tuple(self._weights), np.stack(self._bias), self._start, keep)
        # The schedulers' kernel layout: per-frame parts were made in ``add``, joined here.
        graph.__dict__["packed"] = self._packer.packed()
        return graph


def build_graph(chunk: Chunk, *, edge_weights: bool = True, texture: bool = True,
                texture_sample: int = 1, node_bias=None, scale: int | None = None,
                retention: bool = True, anchor_weight: float | None = None) -> DependencyGraph:
    """The DependencyGraph of ``chunk``.

    scale: the output scale; an edge then carries the share of detail the reconstruction's
    sub-pixel interpolation keeps at its block's HR phase (``motion.retention``, docs/method.md
    §2.3). None, or retention=False (the ablation): every copied pixel carries all of it.
    edge_weights=False: ablation, each inter-coded patch depends on the same patch of the
    previous frame with weight 1. texture=False: ablation, every bias is 1.
    texture_sample: 1 = exact biases; s > 1 = the sampled estimate (``frame_texture``).
    node_bias: None = the texture term; else a callable ``(frame, ref, grid) -> (N,)`` giving
    ``b_t`` (the predictor or the oracle, docs/method.md §2.1; ``texture=False`` still wins).
    anchor_weight: the reconstruction's blend of P-frame anchors with reuse
    (``ReuseConfig.anchor_weight``), giving the graph's keep shares (``anchor_keep``); None:
    an anchor removes its node's whole error.
    """
    builder = GraphBuilder(chunk.grid, chunk.prev, edge_weights=edge_weights, texture=texture,
                           texture_sample=texture_sample, node_bias=node_bias, scale=scale,
                           retention=retention, anchor_weight=anchor_weight)
    for frame in chunk.frames:
        builder.add(frame)
    return builder.build()


def anchor_factors(graph: DependencyGraph, anchors=None) -> np.ndarray:
    """float64 (T, N): ``m``, the factor each node's error is multiplied by under ``anchors``
    (a bool (T, N) mask, an AnchorPlan or None): the keep share at anchors
    (``graph.keep_shares``), 1 elsewhere."""
    shape = (graph.n_frames, graph.n_patches)
    if anchors is None:
        return np.ones(shape)
    if hasattr(anchors, "mask"):
        anchors = anchors.mask()
    anchors = np.asarray(anchors, bool)
    if anchors.shape != shape:
        raise ConfigError(f"expected an anchor mask of shape {shape}, got {anchors.shape}")
    return np.where(anchors, graph.keep_shares, 1.0)


def forward_errors(graph: DependencyGraph, anchors=None, carry_in=None) -> np.ndarray:
    """float64 (T, N): ``e_t`` for every node given anchors (bool (T, N) mask or AnchorPlan)."""
    m = anchor_factors(graph, anchors)
    e = np.zeros((graph.n_frames, graph.n_patches))
    prev = np.zeros(graph.n_patches) if carry_in is None else np.asarray(carry_in, np.float64)
    for t, w in enumerate(graph.weights):
        prev = e[t] = m[t] * (graph.bias[t] + w @ prev)
    return e


def adjoint(graph: DependencyGraph, anchors=None) -> np.ndarray:
    """float64 (T, N): ``g_t``, total error one unit of error at (t, p) causes within the chunk."""
    m = anchor_factors(graph, anchors)
    g = np.ones((graph.n_frames, graph.n_patches))
    for t in range(graph.n_frames - 2, -1, -1):
        g[t] += graph.weights[t + 1].T @ (m[t + 1] * g[t + 1])
    return g


def objective(graph: DependencyGraph, anchors=None, carry_in=None) -> float:
    """J(A): the chunk's total estimated error."""
    return float(forward_errors(graph, anchors, carry_in).sum())


def carry_out(graph: DependencyGraph, anchors=None, carry_in=None) -> np.ndarray:
    """float64 (N,): the last frame's errors, the ``e_{-1}`` of the next chunk."""
    return forward_errors(graph, anchors, carry_in)[-1].copy()
