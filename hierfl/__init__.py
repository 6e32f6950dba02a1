"""hierfl: hierarchical edge-cloud training with early exits.

Importing this package is cheap: it pulls in neither torch, Flower nor Avalanche.
"""

__version__ = "0.1.0"
