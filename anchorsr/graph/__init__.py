"""anchorsr.graph: the dependency graph (DAG) of a chunk and its error recursion (docs/method.md §2)."""

from .dag import (DependencyGraph, GraphBuilder, PackedGraph, adjoint, anchor_factors, anchor_keep,
                  build_graph, carry_out, forward_errors, objective)
from .motion import frame_weights, identity_weights, inter_share, whole_pel
from .predictor import NODE_BIASES, STREAM_NODE_BIASES, BiasPredictor, load_predictor, node_bias_for, predictor_for
from .texture import frame_texture

__all__ = [
    "DependencyGraph", "GraphBuilder", "PackedGraph", "adjoint", "anchor_factors", "anchor_keep", "build_graph",
    "carry_out", "forward_errors", "objective", "frame_weights", "identity_weights", "inter_share", "whole_pel",
    "frame_texture",
    "NODE_BIASES", "STREAM_NODE_BIASES", "BiasPredictor", "load_predictor", "node_bias_for", "predictor_for",
]
