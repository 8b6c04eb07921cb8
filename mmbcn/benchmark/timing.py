"""Timing of several alternatives under the same conditions: the one loop
every benchmark uses.

Each round calls every alternative once; with ``alternate`` the order is
reversed every other round, so that a slow drift of the machine (other
jobs, clocks) does not favour whichever runs first. Ratios are then taken
round by round (:func:`ratio_stats`), which cancels most of the machine's
load changes between rounds.
"""
import statistics
import time
from typing import Callable, List, Optional, Sequence, Tuple

import torch


def synchronize(device: Optional[torch.device]) -> None:
    """Wait for queued CUDA work (nothing to wait for on the CPU)."""
    if device is not None and torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def time_rounds(fns: Sequence[Callable[[int], object]], repeats: int, *,
                warmup: int = 1, alternate: bool = True,
                device: Optional[torch.device] = None, calls: int = 1,
                check: Optional[Callable[[int, int, object], None]] = None,
                progress: Optional[Callable[[int, List[float]], None]] = None
                ) -> List[List[float]]:
    """Seconds per call of every fn over ``repeats`` rounds.

    Every fn is called with the round index (warm-up rounds get indices from
    1,000,000, apart from the timed ones): a fn may seed its inputs with
    it. ``calls`` calls per round are queued before synchronizing (on CUDA
    the synchronization would otherwise be what is timed); ``check(round,
    j, result)`` sees each timed result (e.g. to refuse a non-finite loss);
    ``progress(round, seconds)`` is called after each round.
    """
    for r in range(warmup):
        for fn in fns:
            fn(1_000_000 + r)
    times: List[List[float]] = [[] for _ in fns]
    for r in range(repeats):
        order = reversed(range(len(fns))) if alternate and r % 2 else \
            range(len(fns))
        this_round = [0.0] * len(fns)
        for j in order:
            synchronize(device)
            start = time.perf_counter()
            for _ in range(calls):
                result = fns[j](r)
            synchronize(device)
            this_round[j] = (time.perf_counter() - start) / calls
            if check is not None:
                check(r, j, result)
            times[j].append(this_round[j])
        if progress is not None:
            progress(r, this_round)
    return times


def ratio_stats(times: Sequence[float], base: Sequence[float]
                ) -> Tuple[float, float, float]:
    """Median and quartiles of the per-round ratios ``times / base``."""
    ratios = [t / b for t, b in zip(times, base)]
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), q1, q3
