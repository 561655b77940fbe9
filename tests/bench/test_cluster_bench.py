import math

import pytest

from anchorsr.bench.cluster_bench import run_cluster_bench


def test_cluster_bench_shares_one_capacity_between_policies():
    r = run_cluster_bench(n_streams=2, budget=0.05, quick=True)
    assert r["streams"] == 2 and len(r["per_stream_psnr_y"]) == 2
    w, h = r["lr_size"]
    capacity = 0.05 * 2 * w * h * r["frames_per_stream"]
    for policy in ("global", "equal"):
        assert 0 < r["sr_pixels"][policy] <= capacity + 1
        assert math.isfinite(r["mean_psnr_y"][policy]) and r["mean_psnr_y"][policy] > 20
    # one greedy over both streams buys at least the model gain of the equal split
    assert r["model_gain"]["global"] >= r["model_gain"]["equal"] * 0.999


@pytest.mark.slow
def test_scale_bench_spreads_the_ray_streams_over_an_extra_node_process():
    pytest.importorskip("ray")
    from anchorsr.bench.cluster_scale import run_scale_bench

    r = run_scale_bench((2,), quick=True, extra_node=True, sr_workers=1)
    row = r["by_streams"][0]
    assert r["extra_node"] and r["sr_workers"] == 1 and row["streams"] == 2
    for setup in ("in_process", "ray", "ray_two_nodes", "ray_sr_workers"):
        assert row[setup]["frames"] == 2 * r["frames_per_stream"] and row[setup]["total_fps"] > 0
    assert row["ray"]["nodes_used"] == 1 and row["ray_two_nodes"]["nodes_used"] == 2
    assert row["two_nodes_over_one_node_fps"] > 0 and row["sr_workers_over_in_actor_fps"] > 0
    # the shared SR worker enhanced what the actors' own SR did: the anchors were pasted
    assert row["ray_sr_workers"]["sr_share_mean"] > 0.5 * row["ray"]["sr_share_mean"] > 0


def test_bench_cluster_scale_options():
    from anchorsr.cli import _build_parser

    args = _build_parser().parse_args(["bench", "cluster"])
    assert args.scale_streams == (1, 2, 4, 8) and not args.scale_extra_node
    args = _build_parser().parse_args(["bench", "cluster", "--scale-streams", "8", "--scale-extra-node"])
    assert args.scale_streams == (8,) and args.scale_extra_node and not args.scale_sr_workers
    args = _build_parser().parse_args(["bench", "cluster", "--scale-sr-workers", "2"])
    assert args.scale_sr_workers == 2
