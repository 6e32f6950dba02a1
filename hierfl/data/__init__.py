"""Streams as plain tensors.

The containers scenarios produce, the node-local stream cache (build once, reuse as tensors),
and Avalanche benchmarks brought in.
"""
