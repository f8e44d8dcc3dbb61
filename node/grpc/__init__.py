"""The gRPC face of the node: ``server`` (build_server, serve), the interceptors (``metrics``,
``auth``: authentication and the audit entry of every call, ``errors``: the one error → status table) and
one thin servicer per service (decode, call one use case, encode; proto ↔ domain in ``convert``).
"""
