"""The one timing loop of the benchmarks: round order, warm-up, queued
calls and per-round ratios."""
import pytest

from mmbcn.benchmark.timing import ratio_stats, time_rounds


def recorder(calls, name):
    def run(round_index):
        calls.append((name, round_index))
        return round_index
    return run


def test_rounds_alternate_after_warmup():
    calls = []
    times = time_rounds([recorder(calls, 'a'), recorder(calls, 'b')],
                        repeats=3, warmup=1)
    assert [len(t) for t in times] == [3, 3]
    # warm-up (indices apart from the timed rounds), then a b, b a, a b
    assert calls == [('a', 1_000_000), ('b', 1_000_000), ('a', 0), ('b', 0),
                     ('b', 1), ('a', 1), ('a', 2), ('b', 2)]


def test_fixed_order_queued_calls_check_and_progress():
    calls, checked, rounds = [], [], []
    time_rounds([recorder(calls, 'a'), recorder(calls, 'b')], repeats=2,
                warmup=0, alternate=False, calls=3,
                check=lambda r, j, result: checked.append((r, j, result)),
                progress=lambda r, secs: rounds.append((r, len(secs))))
    assert [c[0] for c in calls] == ['a'] * 3 + ['b'] * 3 + ['a'] * 3 + \
        ['b'] * 3
    assert checked == [(0, 0, 0), (0, 1, 0), (1, 0, 1), (1, 1, 1)]
    assert rounds == [(0, 2), (1, 2)]


def test_ratio_stats_are_per_round():
    # the machine got twice as slow in round 2: per-round ratios stay 2
    median, q1, q3 = ratio_stats([2., 4., 2., 2.], [1., 2., 1., 1.])
    assert (median, q1, q3) == (2., 2., 2.)
    assert ratio_stats([3.], [2.]) == (1.5, 1.5, 1.5)
    assert ratio_stats([1., 2., 3., 4., 5.], [1.] * 5) == pytest.approx(
        (3., 1.5, 4.5))
