import math

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
