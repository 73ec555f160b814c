"""Benchmarks that print medians and ratios against peers measured in the same run."""
