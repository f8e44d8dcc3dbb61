"""Benchmarks (``exnode bench catalog|relay|pull|rpc``): each measures the node's path and a raw limit
in the same run, and prints ``name=value`` figures."""
