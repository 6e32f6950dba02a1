"""What a run produced, and the run folder that holds it.

Accuracy matrices and their summaries, events, traffic accounting, progress lines,
``metrics.json``, ``metrics.csv`` and the plots.
"""
