"""What the node's use cases refuse beside the domain's own errors (``catalog.errors``) and the policy's
(``security.policy.PermissionDenied``): the audit trail that cannot be written, a pull that is not ready
or was left unacknowledged, and the exchange's refusals (the pipeline's ingest, subscriptions, receipts).
Each names the limit, key or step. Here, below both ``node.services`` and ``node.pipeline``, so that
either may raise them; node/grpc/errors.py maps each to its gRPC status."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the use cases' own errors."""


class AuditUnavailable(ServiceError):
    """The audit trail could not be written; the request is refused rather than answered unaudited."""


class NotReady(ServiceError):
    """Something the request depends on does not exist yet (a day that is not over or not closed)."""


class NoEncryptionKey(ServiceError):
    """A peer that publishes no encryption key: nothing personal is sent to it, since it would cross the
    broker in clear (a household check naming it as a target is not filed)."""


class AckTimeout(ServiceError):
    """The client acknowledged nothing for too long; the next pull starts after its last acknowledgement."""


class CallerGone(ServiceError):
    """The caller left (cancelled, or its deadline passed) before the work began: nothing was done or
    counted (a verification's deadline rule, as for a routed request past its deadline)."""


class QuotaExhausted(ServiceError):
    """A verification grant's daily quota is used up; the message says when it resets."""


class RemoteRefused(ServiceError):
    """Another node answered a forwarded request with a refusal; ``code`` is its status name, the message
    its reason (naming its grant, item or field). Subclasses by status, so the one error table maps them."""

    code = "UNKNOWN"

    def __init__(self, node_id: str, message: str) -> None:
        self.node_id = node_id
        super().__init__(f"node {node_id}: {message}")


class RemoteDenied(RemoteRefused):
    code = "PERMISSION_DENIED"


class RemoteInvalid(RemoteRefused):
    code = "INVALID_ARGUMENT"


class RemoteExhausted(RemoteRefused):
    code = "RESOURCE_EXHAUSTED"


class RemoteUnauthenticated(RemoteRefused):
    """The answering node could not tell who asks: the requesting node's signature on the request (its
    identity claims) is missing, or that node or a hop between is not among the node keys it knows."""

    code = "UNAUTHENTICATED"


class RemoteNotFound(RemoteRefused):
    code = "NOT_FOUND"


class RemoteDeadline(RemoteRefused):
    code = "DEADLINE_EXCEEDED"


class RemoteUnavailable(RemoteRefused):
    """No answer that could be used: none in time, the broker unreachable, or a bad signature."""

    code = "UNAVAILABLE"


class RemotePrecondition(RemoteRefused):
    """No route from a relaying node to the node asked (its catalog does not know that node's resource)."""

    code = "FAILED_PRECONDITION"


REMOTE_REFUSALS = {kind.code: kind for kind in (RemoteDenied, RemoteInvalid, RemoteExhausted, RemoteNotFound,
                                               RemoteDeadline, RemoteUnavailable, RemotePrecondition,
                                               RemoteUnauthenticated)}


class ExchangeError(ServiceError):
    """Base of the exchange's errors."""


class RequestTooLarge(ExchangeError):
    """Over one of the node's batch limits; the message names the limit."""


class BadSignature(ExchangeError):
    """The batch's signature does not verify: forged, made with another key, or over other records."""


class BrokerUnavailable(ExchangeError):
    """RabbitMQ could not be reached for a step that needs it now (declaring a subscriber's queue)."""


class OutboxFull(ExchangeError):
    """The outbox holds more undelivered messages than its bound (the broker has not taken them for a while):
    Ingest refuses new batches until it drains, rather than filling the disk."""


class Throttled(ServiceError):
    """A per-department limit of the gRPC port was reached; ``retry_after_s`` is the hint sent with it."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(Throttled):
    """The department sent more requests than its rate allows."""


class TooManyStreams(Throttled):
    """The department holds as many open streams (ingest, pull, catalog watch, exports) as it may."""


class TimestampsUnavailable(ExchangeError):
    """The time-stamping authority has not answered for longer than tsa.max_unstamped_age_s: the node takes
    no new records until it does (records it took are safe; their roots wait for their timestamp)."""
