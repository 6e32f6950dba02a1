"""The cloud's side: its trainer and the round loop that drives the edges.

The orchestrator and its parts (reply collection, cloud-mode uploads), the cloud's side of the
compressed weight exchange (``exchange``), reply checks,
robustness bounds, run health, checkpoints, and the ``Federation`` protocol through which it
reaches its edges. Never imports ``hierfl.edge``.
"""
