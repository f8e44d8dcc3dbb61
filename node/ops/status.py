"""The node's running state for an operator (the console's operator page): each dependency's health,
the outbox's depth and oldest age, the dead letters with their reasons, and the tier links."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

from node.ops.health import broker_answers, database_answers
from node.ops.observed import Observed
from node.ops.workers import workers_up
from security.identity import Principal
from security.policy import NODE_STATE, Action


class Operated(Observed, Protocol):
    """What the operator's view reads beyond health: the policy and the tier links."""

    policy: Any
    tiers: Any


@dataclass(frozen=True)
class DeadLetter:
    id: int
    batch_id: str
    platform: str
    consumer_code: str
    attempts: int
    reason: str
    created_at: dt.datetime


@dataclass(frozen=True)
class TierLink:
    direction: str
    """``up``: a platform of kind node this node relays to; ``down``: a lower node whose keys it trusts."""
    name: str
    detail: str


@dataclass(frozen=True)
class RunningState:
    database: bool
    broker: bool
    workers: dict[str, bool]
    outbox_depth: int
    outbox_oldest_age_s: float | None
    dead_letter_count: int
    dead_letters: list[DeadLetter]
    links: list[TierLink]


def running_state(node: Operated, principal: Principal, *, dead_letter_limit: int = 50) -> RunningState:
    node.policy.require(principal, Action.NODE_OPERATE, NODE_STATE)
    database = database_answers(node)
    depth, oldest, dead, letters = 0, None, 0, []
    if database:
        with node.uow() as uow:
            depth, oldest = uow.exchange.depth()
            dead = uow.exchange.dead_count()
            letters = [DeadLetter(*row) for row in uow.exchange.dead_letters(dead_letter_limit)]
    now = node.catalog.clock()
    links = [TierLink("up", p.name, f"→ {p.upper_node or '?'}（队列 {p.queue}，授权方 {p.consumer_code}）")
             for p in node.tiers.upward]
    links += [TierLink("down", peer, f"信任密钥 {', '.join(sorted(keys))}") for peer, keys in sorted(node.tiers.peers.items())]
    return RunningState(
        database=database, broker=broker_answers(node),
        workers=workers_up(node.workers(), node.config.server.worker_stall_s), outbox_depth=depth,
        outbox_oldest_age_s=(now - oldest).total_seconds() if oldest else None, dead_letter_count=dead,
        dead_letters=letters, links=links)
