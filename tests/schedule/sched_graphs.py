"""Random chunk DAGs for scheduler tests."""

import numpy as np
from anchorsr.graph import DependencyGraph
from anchorsr.types import PatchGrid


def random_graph(rng: np.random.Generator, n_frames: int, height: int, width: int,
                 patch_px: int = 4, density: float = 0.3, zero_bias: float = 0.1,
                 keep: bool = False) -> DependencyGraph:
    """A random chunk DAG: sparse non-negative W_t with row sums <= 1, biases >= 0. keep: the
    nodes keep random shares in [0, 0.6) of their error once anchored (a third keep none)."""
    grid = PatchGrid(patch_px, height, width)
    n = grid.n_patches
    weights = []
    for _ in range(n_frames):
        w = rng.random((n, n)) * (rng.random((n, n)) < density)
        w *= rng.random((n, 1)) / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
        weights.append(w)
    bias = rng.random((n_frames, n)) * (rng.random((n_frames, n)) >= zero_bias)
    shares = rng.random((n_frames, n)) * 0.6 * (rng.random((n_frames, n)) >= 1 / 3) if keep else None
    return DependencyGraph.from_arrays(grid, weights, bias, keep=shares)


def pan_chunk(seed: int, n_frames: int = 30, height: int = 96, width: int = 160, patch_px: int = 32):
    """A chunk of P frames with realistic pan motion (varied speed and intra share per frame)
    and textures from flat to busy: long, strong reference chains, where Palantír's frame
    preselection often beats the plain greedy."""
    from anchorsr.graph.synthetic import coded_frame, pan_motion
    from anchorsr.types import Chunk

    r = np.random.default_rng(seed)
    frames = [coded_frame(0, r.integers(0, 256, (height, width)), size_bytes=5000)]
    for i in range(1, n_frames):
        mv, intra = pan_motion(height, width, r, pan_px=float(r.uniform(1, 8)),
                               intra_share=float(r.uniform(0, 0.1)))
        y = r.integers(0, 256, (height, width)) // int(r.choice([1, 4, 32]))
        frames.append(coded_frame(i, y, mv, intra, size_bytes=1000))
    return Chunk(tuple(frames), PatchGrid(patch_px, height, width))
