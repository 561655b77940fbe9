"""Random chunk DAGs for scheduler tests."""

import numpy as np
from anchorsr.graph import DependencyGraph
from anchorsr.types import PatchGrid


def random_graph(rng: np.random.Generator, n_frames: int, height: int, width: int,
                 patch_px: int = 4, density: float = 0.3, zero_bias: float = 0.1) -> DependencyGraph:
    """A random chunk DAG: sparse non-negative W_t with row sums <= 1, biases >= 0."""
    grid = PatchGrid(patch_px, height, width)
    n = grid.n_patches
    weights = []
    for _ in range(n_frames):
        w = rng.random((n, n)) * (rng.random((n, n)) < density)
        w *= rng.random((n, 1)) / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
        weights.append(w)
    bias = rng.random((n_frames, n)) * (rng.random((n_frames, n)) >= zero_bias)
    return DependencyGraph.from_arrays(grid, weights, bias)
