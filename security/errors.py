"""The base of the security package's errors: who may not (``policy.PermissionDenied``), who is not who
they say (``identity.AuthenticationError``), what does not verify or cannot be read (tokens, cursors,
audit exports, keys, hostile XML). Each names what went wrong; node/grpc/errors.py maps them."""

from __future__ import annotations


class SecurityError(Exception):
    """Base of every error of ``security``."""
