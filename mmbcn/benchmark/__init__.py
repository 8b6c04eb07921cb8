"""Benchmarks: what a step costs, measured under the same conditions.

Nothing in training imports this package.

- :mod:`.timing`: the one interleaved timing loop and per-round ratios.
- :mod:`.layers`: one layer against a baseline (time, memory saved for
  backward) at ResNet-50/FPN shapes (``tools/analysis/benchmark_layers.py``).
- :mod:`.model`: a whole training iteration per scheme
  (``tools/analysis/benchmark_model.py``).
- :mod:`.sync`: BCN's cross-rank sync modes in real distributed training
  (``tools/analysis/benchmark_sync.py``).
"""
