"""Scripts that measure speed, bytes and accuracy and write JSON; run: python -m benchmarks.NAME."""
