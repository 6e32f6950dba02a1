"""Flower adapters: hierfl's exchange spoken in Flower's messages.

The federation over a Flower Grid, the in-process Grid, the edge's message handlers, the
message layout and wire encodings, reply checks, and Flower's private parts
(``flower_internals``, the one module that touches them).
"""
