"""anchorsr.schedule: anchor schedulers behind one interface, and stream-level planning.

Registered names: ``dag-greedy`` (anchorsr's, guarded never to end above Palantír's J),
``dag-greedy-plain`` (the unguarded exact greedy), ``palantir`` (published), ``neuroscaler``,
``key-uniform``, ``keyframes``, ``uniform``, ``all``, ``none`` (docs/method.md §3); the ablations
``dag-greedy-noweights``, ``dag-greedy-notexture`` and ``dag-greedy-noretention``; ``nemo`` (offline, evaluation only).
"""

from .base import (Scheduler, available_schedulers, budget_area, check_budget, get_scheduler,
                   register)
from .baselines import neuroscaler_order
from .dag_greedy import DagGreedyPlain, dag_greedy
from .guarded import CHECKPOINTS, DagGreedy, guarded_greedy, palantir_fast
from .palantir import Palantir, exhaustive_greedy, preselect_frames
from .planning import (CHUNK_END, chunks_of, pair_plans, parse_budget, plan_stream, plan_to_file,
                       read_plans, write_plans)

__all__ = [
    "Scheduler", "available_schedulers", "budget_area", "check_budget", "get_scheduler",
    "register", "neuroscaler_order", "CHECKPOINTS", "DagGreedy", "DagGreedyPlain", "dag_greedy",
    "guarded_greedy", "palantir_fast", "Palantir", "exhaustive_greedy",
    "preselect_frames", "CHUNK_END", "chunks_of", "pair_plans", "parse_budget", "plan_stream", "plan_to_file",
    "read_plans", "write_plans",
]
