"""The benchmarks behind the README's speed and recipe tables run, and measure what they say."""
from ttl.bench import benchmark_training, compare_recipes
from ttl.config import resolve_config


def test_training_benchmark_times_the_engine_for_each_setting():
    res = benchmark_training(widths={"tiny": 2}, steps=2, warmup=1, repeats=3,
                             settings={"fp32": {"batch": 4, "amp": False, "channels_last": False, "fused": False},
                                       "fast": {"batch": 4, "amp": True, "channels_last": True}})
    assert set(res) == {"tiny | fp32", "tiny | fast"}
    assert all(r["median_patches_per_s"] > 0 and r["patch"] == 64 and len(r["runs"]) == 3 for r in res.values())
    assert res["tiny | fp32"]["speedup_vs_before"] == 1.0 == res["tiny | fp32"]["speedup_range"][0]
    fast = res["tiny | fast"]
    ratios = sorted(a / b for a, b in zip(fast["runs"], res["tiny | fp32"]["runs"]))
    assert fast["speedup_vs_before"] == ratios[1] and fast["speedup_range"] == [ratios[0], ratios[2]]


def test_recipe_comparison_scores_each_variant_on_validation_data():
    cfg = resolve_config("smoke", f_steps=2)
    res = compare_recipes(cfg, variants={"l1": {}, "mse, half": {"f_loss": "mse", "f_steps": "half"}})
    assert res["mse, half"]["steps"] == 1 and res["l1"]["steps"] == 2
    assert set(res["l1"]) >= {"synthetic", "realistic", "realistic_clean", "train_s"}
