"""Reports over finished runs: log reading, result tables, plots.

Nothing in training imports this package.

- :mod:`.tables`: the markdown / CSV writer every report and benchmark uses.
- :mod:`.results`: one run read back from its mmengine work dir.
- :mod:`.collect`: result tables over many runs (seeds grouped, mean ± std),
  plots (``tools/analysis/collect_results.py``).
- :mod:`.singularity`: elimination-singularity reports of work dirs and
  checkpoints (``tools/analysis/singularity.py``).
"""
