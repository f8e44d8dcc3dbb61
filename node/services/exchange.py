"""The exchange's use cases beside the record's path (which is ``node.pipeline``): provider keys,
subscriptions, receipts and delivery status. Access is the policy's to decide, every time."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence

from adapters.platforms import Platform
from adapters.rabbit import describe
from catalog.errors import AlreadyExists, Conflict, InvalidField, NotFound
from node.services.errors import BadSignature, BrokerUnavailable
from node.storage.exchange_repository import ProviderKey, StoredBatch, Subscription
from node.storage.unit_of_work import UnitOfWorkFactory
from security.identity import Principal
from security.keys import PublicKey, UnusableKey, parse_public_key
from security.policy import Action, Policy, Target
from security.sealing import BadConsumerKey, parse_consumer_key

Clock = Callable[[], dt.datetime]


class ExchangeApplication:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: Policy, node_id: str,
                 platforms: Sequence[Platform], declare_queue: Callable[[str], None] | None = None) -> None:
        self.uow = uow
        self.clock = clock
        self.policy = policy
        self.node_id = node_id
        self.platforms = {p.name: p for p in platforms}
        self.declare_queue = declare_queue
        """Declares a subscriber's durable quorum queue on the broker (the bootstrap gives the real one)."""

    # -- provider keys ----------------------------------------------------------------------------------
    def register_key(self, principal: Principal, department_code: str, algorithm: str, public_pem: str
                     ) -> ProviderKey:
        """A department's public key for its batch signatures (and its receipts)."""
        self.policy.require(principal, Action.PROVIDER_KEY_WRITE, Target.department(department_code))
        try:
            public = parse_public_key(algorithm, public_pem)
        except UnusableKey as error:
            raise InvalidField.one("public_pem", f"not a {algorithm} public key: {error}") from None
        kid = public.kid
        key = ProviderKey(kid, department_code, algorithm, public_pem, self.clock())
        with self.uow(write=True) as uow:
            existing = uow.exchange.get_key(kid)
            if existing is not None:
                if existing.department_code != department_code:
                    raise AlreadyExists("key", f"{kid} (registered for {existing.department_code})")
                return existing
            uow.exchange.add_key(key)
            uow.commit()
        return key

    def register_encryption_key(self, principal: Principal, department_code: str, algorithm: str, public_pem: str
                                ) -> ProviderKey:
        """A consumer department's encryption key: from now on every message relayed to it is sealed to it
        (``node.pipeline.outbox``), and the broker and the tiers between see ciphertext."""
        self.policy.require(principal, Action.CONSUMER_KEY_WRITE, Target.department(department_code))
        try:
            public = parse_consumer_key(algorithm, public_pem)
        except BadConsumerKey as error:
            raise InvalidField.one("public_pem", f"not a {algorithm} public key: {error}") from None
        key = ProviderKey(public.kid, department_code, algorithm, public_pem, self.clock())
        with self.uow(write=True) as uow:
            existing = uow.exchange.get_consumer_key(public.kid)
            if existing is not None:
                if existing.department_code != department_code:
                    raise AlreadyExists("key", f"{public.kid} (registered for {existing.department_code})")
                return existing
            uow.exchange.add_consumer_key(key)
            uow.commit()
        return key

    # -- subscriptions ----------------------------------------------------------------------------------
    def subscribe(self, principal: Principal, resource_code: str, platform_name: str) -> tuple[Subscription, str]:
        """A consumer's platform queue for a resource it holds a grant for; records ingested from now on
        are relayed to it. Returns the subscription and its queue name."""
        platform = self.platforms.get(platform_name)
        if platform is None:
            known = ", ".join(sorted(self.platforms)) or "none configured"
            raise InvalidField.one("platform", f"unknown platform {platform_name!r} (known: {known})")
        self.policy.require(principal, Action.EXCHANGE_SUBSCRIBE, Target.platform(platform_name, platform.consumer_code))
        self.policy.require(principal, Action.EXCHANGE_SUBSCRIBE, Target("resource", resource_code))
        with self.uow(write=True) as uow:
            grants = [g for g in uow.lists.grants_for(principal.department_code, resource_code) if g.live(self.clock())]
            if not grants:  # revoked or expired since the decision: decided again, and refused with the reason
                self.policy.require(principal, Action.EXCHANGE_SUBSCRIBE, Target("resource", resource_code))
                raise Conflict(f"the grant for {resource_code} changed meanwhile; subscribe again")
            subscription = Subscription(principal.department_code, resource_code, platform_name, grants[0].id)
            if self.declare_queue is not None:
                try:
                    self.declare_queue(platform.queue)
                except Exception as error:
                    raise BrokerUnavailable(f"cannot declare queue {platform.queue}: the broker does not answer "
                                            f"({describe(error)}); subscribe again when it does") from None
            uow.exchange.put_subscription(subscription, self.clock())
            uow.commit()
        return subscription, platform.queue

    def receipt(self, principal: Principal, batch_id: str, receiver_code: str, record_ids: Sequence[str], kid: str,
                signature: bytes) -> bool:
        """A receiver's signed receipt for (part of) a batch it was sent. Returns False for a repeat."""
        self.policy.require(principal, Action.EXCHANGE_RECEIPT, Target.department(receiver_code))
        now = self.clock()
        with self.uow(write=True) as uow:
            repo = uow.exchange
            if repo.get_batch(batch_id) is None:
                raise NotFound("batch", batch_id)
            self.policy.require(principal, Action.EXCHANGE_RECEIPT,
                                Target.batch(batch_id, receiver_code, frozenset(repo.batch_consumers(batch_id))))
            unknown = sorted(set(record_ids) - repo.batch_record_ids(batch_id))
            if not record_ids or unknown:
                raise InvalidField.one("record_ids", "name the batch's records you received"
                                       + (f"; not in batch {batch_id}: {', '.join(unknown[:5])}" if unknown else ""))
            key = repo.get_key(kid)
            if key is None or key.department_code != receiver_code or key.revoked_at is not None:
                raise BadSignature(f"key_id: {kid!r} is not a live registered key of department {receiver_code}")
            message = receipt_message(self.node_id, batch_id, receiver_code, record_ids)
            if not PublicKey(key.kid, key.algorithm, key.public_pem, "").verify(message, signature):
                raise BadSignature(f"signature: the receipt does not verify with key {kid}")
            fresh = repo.add_receipt(batch_id, receiver_code, len(set(record_ids)), kid, signature, now)
            uow.commit()
        return fresh

    def delivery_status(self, principal: Principal, batch_id: str) -> tuple[StoredBatch, list[tuple[str, str, int, str]]]:
        with self.uow() as uow:
            stored = uow.exchange.get_batch(batch_id)
            if stored is None:
                raise NotFound("batch", batch_id)
            states = uow.exchange.batch_states(batch_id)
            receipted = uow.exchange.receivers(batch_id)
        states = [(p, "RECEIPTED" if s == "CONFIRMED" and c in receipted else s, a, e) for p, s, a, e, c in states]
        self.policy.require(principal, Action.EXCHANGE_STATUS, Target.batch(batch_id, stored.provider_code))
        return stored, states


def receipt_message(node_id: str, batch_id: str, receiver_code: str, record_ids: Sequence[str]) -> bytes:
    """What a receiver signs: this node, the batch, itself and the record ids it received."""
    document = {"node": node_id, "batch_id": batch_id, "receiver": receiver_code, "records": sorted(set(record_ids))}
    return b"exnode-receipt/1\n" + json.dumps(document, ensure_ascii=False, sort_keys=True,
                                                separators=(",", ":")).encode("utf-8")
