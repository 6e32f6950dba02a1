"""Helpers that know nothing of the method: logging, node-local paths, atomic private files.

Imports only ``hierfl.errors``.
"""
