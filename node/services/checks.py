"""Household checks (家庭经济状况核对): file a check, send one signed request per target over RabbitMQ, take
the signed answers as they arrive, and report.

Messages follow ``adapters/codecs/schemas/household-check.schema.json``. The check and its targets are
stored in one transaction before any request leaves; each answer is checked against the target's published
keys (the peers directory) and stored in the transaction the reply queue's consumer acks after (nothing the
broker delivered is lost on a kill -9 of the node); a duplicate answer changes nothing; a PENDING target is
LATE once the deadline passed. Answers are kept as long as the check (the confidentiality issue will store
them encrypted at rest).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence

from catalog import checks as domain
from catalog.checks import HouseholdCheck, Member
from catalog.errors import InvalidField, NotFound
from catalog.lists import BEIJING
from node.services.errors import NoEncryptionKey
from node.storage.unit_of_work import UnitOfWorkFactory
from security.broker_sealing import NotSealed, Sealing
from security.identity import Principal
from security.keys import PublicKey, SigningKey
from security.policy import Action, Policy, Target
from security.verdicts import canonical

log = logging.getLogger(__name__)
REQUEST_CONTEXT = b"exnode-check/1\n"
ANSWER_CONTEXT = b"exnode-check-answer/1\n"
CONTENT_TYPE = "application/vnd.exnode.check+json"
CORRELATION_PREFIX = "check:"
Clock = Callable[[], dt.datetime]
Publish = Callable[[str, bytes, str], None]
"""(target, body, correlation id) → the request is on exnode.<target>.rpc (raises when it is not)."""


class CheckApplication:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: Policy, signer: SigningKey, node_id: str,
                 peers: Mapping[str, Mapping[str, PublicKey]]) -> None:
        self.uow = uow
        self.clock = clock
        self.policy = policy
        self.signer = signer
        self.node_id = node_id
        self.peers = peers
        self.publish: Publish | None = None
        """Set when the node talks to the broker (``Node.start_rpc``)."""
        self.sealing: Sealing | None = None
        """Seals each request to its target's published encryption key and opens the answers sealed to this
        node's (``security.broker_sealing``): members' ID numbers, names and findings never cross in clear."""

    def file_check(self, principal: Principal, members: Sequence[Member], purpose: str, authorisation: str,
                   targets: Sequence[tuple[str, str]], deadline: dt.datetime) -> HouseholdCheck:
        self.policy.require(principal, Action.CHECK_FILE, Target.department(principal.department_code))
        now = self.clock()
        check_id = f"HC-{now.astimezone(BEIJING):%Y%m%d}-{uuid.uuid4().hex[:8].upper()}"
        check = domain.file_check(check_id, principal.department_code, list(members), purpose, authorisation,
                                  list(targets), deadline, now, frozenset(self.peers))
        if self.publish is None:
            raise InvalidField.one("targets", "this node does not talk to other nodes (exchange.dispatch is off)")
        if self.sealing is not None:  # refused now, not LATE at the deadline: its request would go in clear
            unsealable = [t.name for t in check.targets if t.name not in self.sealing.peers]
            if unsealable:
                raise NoEncryptionKey(
                    f"target {', '.join(unsealable)} publishes no encryption key (\"encryption\" in its "
                    "public-keys.json in the peers directory): the members' ID numbers and names would cross the "
                    "broker in clear, so no check is filed")
        with self.uow(write=True) as uow:
            uow.checks.add(check, principal.subject)
            uow.commit()
        for target in check.targets:
            try:
                body = self._request(check, target.name, target.category)
                if self.sealing is not None:
                    body = self.sealing.to_peer(target.name, body)
                self.publish(target.name, body, f"{CORRELATION_PREFIX}{check.id}:{target.name}")
            except Exception as error:  # the target stays PENDING and becomes LATE: the check still completes
                log.error("check %s: the request to %s could not be sent: %s: %s", check.id, target.name,
                          type(error).__name__, error)
        return check

    def _request(self, check: HouseholdCheck, target: str, category: str) -> bytes:
        document = {"format": "exnode-check/1", "check_id": check.id, "target": target, "category": category,
                    "from": self.node_id, "requester": check.requester_code, "purpose": check.purpose,
                    "authorisation": check.authorisation, "deadline": check.deadline.isoformat(),
                    "members": [{"id_number": m.id_number, "name": m.name} for m in check.members]}
        if self.sealing is not None:
            document["reply_key"] = self.sealing.reply_key
        signature = self.signer.sign(REQUEST_CONTEXT + canonical(document))
        return json.dumps({"request": document, "kid": self.signer.kid,
                           "signature": base64.b64encode(signature).decode()}, ensure_ascii=False).encode()

    def receive(self, correlation_id: str, body: bytes) -> None:
        """An answer from the reply queue (called before its ack): verified, applied, committed."""
        check_id, _, target = correlation_id.removeprefix(CORRELATION_PREFIX).partition(":")
        now = self.clock()
        unsealed = ""
        if self.sealing is not None:
            try:
                body = self.sealing.open(body)  # stored opened: sealed at rest with the check's answers
            except NotSealed as error:
                unsealed = f"the answer is not sealed to this node: {error}"
        if unsealed:
            valid, reason, refused, findings, kid, signature = False, unsealed, False, (), "", ""
        else:
            valid, reason, refused, findings, kid, signature = self._verify(target, check_id, body)
        with self.uow(write=True) as uow:
            check = uow.checks.get(check_id, for_update=True)
            if check is None:
                log.warning("an answer for unknown check %s from %s; dropped", check_id, target)
                return
            changed = domain.receive(check, target, valid=valid, refused=refused, reason=reason, findings=findings,
                                     at=now, kid=kid, signature=signature)
            if changed is None:
                log.info("check %s: answer from %s ignored (duplicate, unknown or late)", check_id, target)
                return
            uow.checks.put_target(check_id, changed, body)
            uow.commit()

    def undeliverable(self, correlation_id: str, reason: str) -> None:
        """The broker returned the request to a target (no request queue): the target is final at once,
        rather than LATE at the deadline, and the reason names the missing queue."""
        check_id, _, target = correlation_id.removeprefix(CORRELATION_PREFIX).partition(":")
        with self.uow(write=True) as uow:
            check = uow.checks.get(check_id, for_update=True)
            changed = None if check is None else domain.undelivered(check, target, reason)
            if changed is None:
                return
            uow.checks.put_target(check_id, changed)
            uow.commit()
        log.warning("check %s: the request to %s was not delivered: %s", check_id, target, reason)

    def _verify(self, target: str, check_id: str, body: bytes) -> tuple[bool, str, bool, tuple[dict, ...], str, str]:
        try:
            wrapper = json.loads(body)
            answer = wrapper["answer"]
            kid, signature_text = str(wrapper["kid"]), str(wrapper["signature"])
            signature = base64.b64decode(signature_text, validate=True)
        except (ValueError, KeyError, TypeError):
            return False, "not a signed answer (exnode-check-answer/1)", False, (), "", ""
        key = self.peers.get(target, {}).get(kid)
        if key is None or not key.verify(ANSWER_CONTEXT + canonical(answer), signature):
            return False, f"the answer's signature does not verify with a key of {target}", False, (), kid, ""
        if answer.get("check_id") != check_id or answer.get("target") != target \
                or answer.get("format") != "exnode-check-answer/1":
            return False, "the answer names another check or answerer", False, (), kid, ""
        refused = answer.get("status") == "REFUSED"
        findings = tuple(f for f in answer.get("findings", []) if isinstance(f, dict))
        return True, str(answer.get("reason", "")), refused, findings, kid, signature_text

    def get_check(self, principal: Principal, check_id: str) -> HouseholdCheck:
        """The check as it stands; PENDING targets past the deadline become LATE (stored)."""
        with self.uow() as uow:
            check = uow.checks.get(check_id)
        if check is None:
            raise NotFound("check", check_id)
        self.policy.require(principal, Action.CHECK_READ, Target.department(check.requester_code))
        late = domain.overdue(check, self.clock())
        if late:
            with self.uow(write=True) as uow:
                fresh = uow.checks.get(check_id, for_update=True)
                assert fresh is not None
                for target in domain.overdue(fresh, self.clock()):
                    uow.checks.put_target(check_id, target)
                uow.commit()
            with self.uow() as uow:
                check = uow.checks.get(check_id)
            assert check is not None
        return check

    def version(self, check_id: str) -> int:
        with self.uow() as uow:
            return uow.checks.version(check_id)

    def export_xml(self, principal: Principal, check_id: str) -> bytes:
        """The combined report as XML valid against node/files/schemas/check-report.xsd."""
        from node.files.check_report import report_xml

        return report_xml(self.get_check(principal, check_id))

    def export_csv(self, principal: Principal, check_id: str) -> bytes:
        """The household's combined report: one row per member, target and finding, with every answer's
        answerer, state, key id and signature; UTF-8 with BOM (opens in Excel/WPS)."""
        check = self.get_check(principal, check_id)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["核对编号", "授权书编号", "成员公民身份号码", "成员姓名", "核对对象", "类别", "状态", "原因",
                         "信息项", "值", "答复时间", "签名密钥", "签名"])
        names = {m.id_number: m.name for m in check.members}
        for target in check.targets:
            rows = [(f["id_number"], item, value) for f in target.findings for item, value in f["items"].items()]
            for id_number, item, value in rows or [("", "", "")]:
                writer.writerow([check.id, check.authorisation, id_number, names.get(id_number, ""), target.name,
                                 target.category, target.state.value, target.reason, item,
                                 value if isinstance(value, str) else json.dumps(value, ensure_ascii=False),
                                 target.answered_at.isoformat() if target.answered_at else "", target.kid,
                                 target.signature])
        return ("\ufeff" + out.getvalue()).encode("utf-8")
