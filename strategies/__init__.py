"""Pluggable strategies: edge aggregation (Flower strategies) and, later, continual learning."""
