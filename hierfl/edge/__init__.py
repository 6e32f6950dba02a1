"""The edge device's side: what one edge computes and keeps between messages.

Its trainer (segment and exit), one round's work, split learning's edge, the weights it holds
for the compressed exchange (``exchange``: base, residual, error feedback), node-local state,
the uplink backlog, the device owner's policy and the emulated link. Never imports
``hierfl.cloud``: the two meet in ``hierfl.boundary`` and ``hierfl.train``.
"""
