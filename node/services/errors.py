"""What the exchange refuses (the pipeline's ingest, subscriptions, receipts), beside the domain's own errors
(``catalog.errors``) and the policy's (``security.policy.PermissionDenied``): each names the limit, key
or step. Here, below both ``node.services`` and ``node.pipeline``, so that either may raise them."""

from __future__ import annotations


class ExchangeError(Exception):
    """Base of the exchange's errors."""


class RequestTooLarge(ExchangeError):
    """Over one of the node's batch limits; the message names the limit."""


class BadSignature(ExchangeError):
    """The batch's signature does not verify: forged, made with another key, or over other records."""


class BrokerUnavailable(ExchangeError):
    """RabbitMQ could not be reached for a step that needs it now (declaring a subscriber's queue)."""
