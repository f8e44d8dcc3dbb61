"""校核纠错's use cases: raise an objection to a delivered record, the provider's check (confirm or
correct), escalation of overdue ones, and the quality score per resource.

The correction itself is an ordinary record sent through the normal ingest (signed, stored, relayed to
every subscriber); the provider names it here, and the node checks it is a record of the same resource
stored after the objection. Each change is one unit of work authorised by the policy; RPCs are audited by
the interceptor, the daily job's escalations by the job.

Over the relay, the mark travels with the record: raising an objection re-publishes the record marked
disputed to the subscribers it was delivered to, and the provider's answer re-publishes it unmarked, in
the same transaction as the change (``DisputedRelay``: the ingest pipeline's outbox). Across tiers, the
node platforms get a signed notice instead, and the upper node serves the mark the lower node set
(``node.pipeline.tiers``). An objection raised at an upper node to a lower tier's record is accepted with
the same checks, kept here as forwarded and sent down the record's route as a signed document; the origin
node files it for its provider, whose answer comes back up to this objection (``TierObjections``). The
provider answers, and the coordinator escalates, at the origin node only.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from catalog import objections as domain
from catalog.errors import Conflict, IllegalTransition, InvalidField, NotFound
from catalog.lists import Compliance
from catalog.model import ResourceStatus
from catalog.objections import Objection, ObjectionState, QualityScore, RecordKey
from node.services.lists import (
    LISTS,
    Clock,
    ListsApplication,
    Page,
    _after,
    _department,
    _new_id,
    _page_size,
    page_of,
)
from node.storage.catalog_repository import ResourceFilter
from node.storage.objections_repository import ObjectionFilter, StaleObjection
from node.storage.unit_of_work import UnitOfWork
from security.identity import Principal
from security.policy import Action, Target


def _target(objection: Objection) -> Target:
    return Target.objection(objection.id, objection.raiser_code, objection.record.provider_code)


class DisputedRelay(Protocol):
    """What the objections need of the relay (``node.pipeline.ingest.Ingest``)."""

    def relay_disputed(self, uow: UnitOfWork, provider_code: str, resource_code: str, record_id: str,
                       consumers: frozenset[str], notice_id: str, disputed: bool, now: dt.datetime) -> int: ...

    def committed(self, subscribers: int) -> None: ...


class TierObjections(Protocol):
    """What the objections need of the tier link (``node.pipeline.tiers.TierApplication``)."""

    def forward_objection(self, uow: UnitOfWork, objection: Objection, now: dt.datetime) -> bool: ...

    def objection_forwarded_to(self, uow: UnitOfWork, objection_id: str) -> str: ...

    def objection_answered(self, uow: UnitOfWork, objection: Objection, now: dt.datetime) -> None: ...


class ObjectionsApplication:
    def __init__(self, lists: ListsApplication, relay: DisputedRelay | None = None,
                 tiers: TierObjections | None = None) -> None:
        self.lists = lists
        self.relay = relay
        """None: the mark is served by pulls, queries and verifications only (tests of the lists alone)."""
        self.tiers = tiers
        """Set when the node has tier links: objections to a lower tier's record go down to its provider."""

    @property
    def clock(self) -> Clock:
        return self.lists.clock

    def raise_objection(self, principal: Principal, resource_code: str, record_id: str, evidence: str,
                        attachments: tuple[str, ...] = (), item: str = "") -> Objection:
        """A department the record was delivered to objects (PERMISSION_DENIED for any other, whether the
        record exists or not); the provider must check it within ``objection_days`` working days."""
        if not resource_code:
            raise InvalidField.one("resource_code", "is required")
        if not record_id:
            raise InvalidField.one("record_id", "is required")
        lists = self.lists
        now = self.clock()
        with lists.uow(write=True) as uow:
            resource = uow.catalog.get(resource_code)
            provider = resource.latest.metadata.provider_code if resource else ""
            key = RecordKey(provider, resource_code, record_id)
            stored = uow.objections.record(key) if resource else None
            delivered = uow.objections.delivered_to(stored) if stored else frozenset()
            lists.policy.require(principal, Action.OBJECTION_RAISE, Target.record(str(key), provider, delivered))
            if resource is None:  # not reached: the policy refused (nothing was delivered of it)
                raise NotFound("resource", resource_code)
            origin, via = uow.catalog.route(resource_code)
            items = tuple(i.name for i in resource.latest.metadata.items)
            deadline = lists.calendar.add_working_days(now, lists.deadlines.objection_days)
            objection = domain.raise_objection(_new_id("YY", now), key, item, items, principal.department_code,
                                               principal.subject, evidence, tuple(attachments), now, deadline)
            uow.objections.add(objection)
            # a lower tier's record: its provider checks it at its own node, so the objection goes down the route
            if origin and (self.tiers is None or not self.tiers.forward_objection(uow, objection, now)):
                raise IllegalTransition(
                    "relayed", "raise an objection to", f"record {record_id} of {resource_code} was relayed here from "
                    f"node {via} (its provider {provider} is at node {origin}) and no tier link leads there: raise "
                    f"it at node {origin}; the disputed mark set there is served here too", what="record")
            published = self._relay(uow, objection, delivered, f"{objection.id}.raised", True, now)
            uow.commit()
        if self.relay is not None:
            self.relay.committed(published)
        return objection

    def answer(self, principal: Principal, objection_id: str, *, corrected_record_id: str = "", reason: str = ""
               ) -> Objection:
        """The provider's check: confirmed with reasons (no record named), or corrected by a record of the
        same resource it sent after the objection (named). Late answers are recorded as late."""
        now = self.clock()
        with self.lists.uow(write=True) as uow:
            objection = self._load(uow, objection_id)
            self.lists.policy.require(principal, Action.OBJECTION_ANSWER, _target(objection))
            lower = self.tiers.objection_forwarded_to(uow, objection_id) if self.tiers is not None else ""
            if lower:
                raise IllegalTransition(objection.state.value, "answer", f"objection {objection_id} was forwarded to "
                                        f"node {lower} toward the record's provider, which answers it there",
                                        what="objection")
            if corrected_record_id:
                self._check_correction(uow, objection, corrected_record_id)
                answered = domain.correct(objection, principal.subject, corrected_record_id, reason, now)
            else:
                answered = domain.confirm(objection, principal.subject, reason, now)
            self._save(uow, answered, objection)
            stored = uow.objections.record(objection.record)
            delivered = uow.objections.delivered_to(stored) if stored else frozenset()
            published = self._relay(uow, answered, delivered, f"{objection.id}.answered", False, now)
            if self.tiers is not None:  # raised at an upper node: the answer goes back up to the objector
                self.tiers.objection_answered(uow, answered, now)
            uow.commit()
        if self.relay is not None:
            self.relay.committed(published)
        return answered

    def _relay(self, uow: UnitOfWork, objection: Objection, delivered: frozenset[str], notice_id: str,
               disputed: bool, now: dt.datetime) -> int:
        if self.relay is None or not delivered:
            return 0
        key = objection.record
        return self.relay.relay_disputed(uow, key.provider_code, key.resource_code, key.record_id, delivered,
                                         notice_id, disputed, now)

    def escalate_overdue(self) -> list[Objection]:
        now = self.clock()
        escalated = []
        with self.lists.uow(write=True) as uow:
            for objection in uow.objections.open_due(now):
                if self.tiers is not None and self.tiers.objection_forwarded_to(uow, objection.id):
                    continue  # the origin node's coordinator escalates it
                changed = domain.escalate(objection, now)
                uow.objections.save(changed, objection.version)
                escalated.append(changed)
            uow.commit()
        return escalated

    def get(self, principal: Principal, objection_id: str) -> Objection:
        with self.lists.uow() as uow:
            objection = self._load(uow, objection_id)
        self.lists.policy.require(principal, Action.OBJECTION_READ, _target(objection))
        return objection

    def list(self, principal: Principal, department_code: str = "", resource_code: str = "",
             state: ObjectionState | None = None, page_size: int = 0, page_token: str = "") -> Page:
        policy = self.lists.policy
        policy.require(principal, Action.LISTS_READ, LISTS)
        flt = ObjectionFilter(_department(department_code), resource_code, state, policy.lists_visibility(principal))
        size = _page_size(page_size)
        scope = repr(flt)
        with self.lists.uow() as uow:
            rows = uow.objections.list(flt, after_id=_after(page_token, scope), limit=size + 1)
        return page_of(rows, size, scope)

    def quality(self, principal: Principal, provider_code: str = "", resource_code: str = "") -> list[QualityScore]:
        """Per published resource (of one provider, or all): records stored, objections raised, open and
        upheld (upheld per 10,000 records), and the timeliness of its deliveries (责任清单)."""
        self.lists.policy.require(principal, Action.LISTS_READ, LISTS)
        _department(provider_code, "provider_code")
        lines = {(line.obligation.department_code, line.obligation.resource_code): line.status
                 for line in self.lists.obligations(principal, provider_code)}
        with self.lists.uow() as uow:
            resources = uow.catalog.all(ResourceFilter(status=ResourceStatus.PUBLISHED, provider_code=provider_code))
            counts = uow.objections.counts()
            stored = uow.objections.record_counts()
        out = []
        for resource in resources:
            if resource_code and resource.code != resource_code:
                continue
            meta = resource.latest.metadata
            objected = counts.get(resource.code, {})
            status = lines.get((meta.provider_code, resource.code))
            out.append(QualityScore(
                resource.code, meta.provider_code, stored.get((meta.provider_code, resource.code), 0),
                objected.get("objections", 0), objected.get("open", 0), objected.get("upheld", 0),
                (status.compliance if status else Compliance.UNSCHEDULED).value,
                status.missed_periods if status else 0))
        return out

    # -- helpers ----------------------------------------------------------------------------------------
    @staticmethod
    def _load(uow: UnitOfWork, objection_id: str) -> Objection:
        if not objection_id:
            raise InvalidField.one("id", "is required")
        objection = uow.objections.get(objection_id)
        if objection is None:
            raise NotFound("objection", objection_id)
        return objection

    @staticmethod
    def _check_correction(uow: UnitOfWork, objection: Objection, record_id: str) -> None:
        key = RecordKey(objection.record.provider_code, objection.record.resource_code, record_id)
        stored = uow.objections.record(key)
        if stored is None:
            raise InvalidField.one("record_id", f"{record_id} is not a stored record of {key.resource_code}: send the "
                                                "corrected record through the normal ingest first")
        if record_id == objection.record.record_id or stored.received_at < objection.created_at:
            raise InvalidField.one("record_id", f"{record_id} was stored before the objection "
                                                f"({stored.received_at:%Y-%m-%d %H:%M} UTC): a correction is a new "
                                                "record sent after it")

    @staticmethod
    def _save(uow: UnitOfWork, changed: Objection, before: Objection) -> None:
        try:
            uow.objections.save(changed, before.version)
        except StaleObjection:
            uow.restart()
            current = uow.objections.get(before.id)
            state = current.state.value if current else "gone"
            raise Conflict(f"objection {before.id} was answered meanwhile: it is now {state}") from None

