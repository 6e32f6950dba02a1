"""Flower adapters: the only place in the core that imports ``flwr``."""
