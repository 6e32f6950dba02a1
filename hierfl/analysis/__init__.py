"""Offline analysis that trains nothing: what a cut costs and which to choose.

The performance model, the planner, cut profiles and Flower's fixed overhead. Never imports
the engines (``edge``, ``cloud``, ``train``, ``app``, ``deploy``).
"""
