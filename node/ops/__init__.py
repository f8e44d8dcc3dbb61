"""Operating the node: ``health`` (per-dependency gRPC health), ``workers`` (liveness of background
workers), ``metrics`` (Prometheus counters and the scrape-time collector), ``logs`` (JSON lines with the
request id), ``request_context`` (the current request), ``backup`` (backup and restore), ``startup``
(start-up checks, GC tuning), ``observed`` (what health and metrics read of a node).
"""
