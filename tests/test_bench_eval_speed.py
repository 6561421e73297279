"""bench/eval_speed.py: the comparison of two evaluation reports it prints."""

from __future__ import annotations


def test_largest_difference_finds_the_metric_that_moved_and_ignores_timings(bench_script):
    script = bench_script("eval_speed")
    before = {"seconds": 90.0, "git_commit": "a", "datasets": {"d": {"accuracy": 0.5, "targets": {"x": {"l1": 0.25}}}},
              "notes": ["n"]}
    after = {"seconds": 30.0, "git_commit": "b", "datasets": {"d": {"accuracy": 0.5, "targets": {"x": {"l1": 0.2500004}}}},
             "notes": ["n"]}
    diff, where = script.largest_difference(before, after)
    assert where == "/datasets/d/targets/x/l1" and abs(diff - 4e-7) < 1e-12
    assert script.largest_difference(before, before) == (0.0, "")
    changed = {**after, "datasets": {"d": {"accuracy": None, "targets": {"x": {"l1": 0.25}}}}}
    assert script.largest_difference(before, changed) == (float("inf"), "/datasets/d/accuracy")
    assert script.largest_difference({"v": [1.0, 2.0]}, {"v": [1.0, 2.5]}) == (0.5, "/v[1]")
    assert script.largest_difference({"v": [1.0]}, {"v": [1.0, 2.0]}) == (float("inf"), "/v")
