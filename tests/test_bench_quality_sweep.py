"""bench/quality_sweep.py's seeds: one training seed says little (the benchmark's JNT expression
accuracy moved by 0.075 between seeds 0-2), so ``--seeds`` runs every variant at several and
summarises. These check the expansion, its refusals and the summary's arithmetic."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def sweep(bench_script):
    return bench_script("quality_sweep")


def test_every_variant_runs_once_per_seed_with_that_training_seed(sweep):
    spec = {"a": {"lambda_hist": 0.0}, "b": {"config": {"g_out_kernel": 1}}}
    runs = sweep.expand_seeds(spec, [0, 2])
    assert list(runs) == ["a@s0", "a@s2", "b@s0", "b@s2"]
    assert runs["a@s2"] == {"lambda_hist": 0.0, "train_seed": 2}
    assert runs["b@s0"] == {"config": {"g_out_kernel": 1}, "train_seed": 0}
    assert spec["a"] == {"lambda_hist": 0.0}  # the spec itself is left alone
    assert sweep.expand_seeds(spec, None) is spec


def test_a_variant_with_its_own_training_seed_is_refused_by_name(sweep):
    with pytest.raises(SystemExit, match="fixed_seed"):
        sweep.expand_seeds({"ok": {}, "fixed_seed": {"train_seed": 3}}, [0, 1])


@pytest.mark.parametrize("text", ["0,x", "1,1", "-1,0", ""])
def test_bad_seed_lists_are_refused(sweep, text):
    with pytest.raises(SystemExit, match="--seeds"):
        sweep.parse_seeds(text)


def test_the_summary_covers_finished_seeds_only(sweep):
    rows = {
        "a@s0": {"expression_accuracy": 0.8, "hair_l1_ratio": 0.6, "train_s": 700},
        "a@s1": {"expression_accuracy": 0.7, "hair_l1_ratio": 0.7, "train_s": 710},
        "a@s2": {"unfinished": True, "log_tail": "killed"},
        "b@s0": {"unfinished": True, "log_tail": ""},
    }
    summary = sweep.summarise(rows, {"a": {}, "b": {}}, [0, 1, 2])
    assert summary["a"]["seeds"] == [0, 1]
    assert summary["a"]["expression_accuracy"] == {"mean": 0.75, "min": 0.7, "max": 0.8}
    assert summary["a"]["hair_l1_ratio"]["mean"] == pytest.approx(0.65)
    assert summary["a"]["male_accuracy"] is None  # not reported by any seed
    assert summary["b"] == {"seeds": [], **{key: None for key in sweep.COLUMNS}}
    sweep.print_table(rows, summary)  # the table renders finished, unfinished and summary rows
