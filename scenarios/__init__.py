"""Avalanche-built class-incremental streams, split across edge clients."""
