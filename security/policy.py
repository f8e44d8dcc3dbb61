"""The one place that decides who may do what (DESIGN.md §8).

Every servicer and use case asks ``Policy.decide`` (or ``require``) with the caller, the action and the
target; nothing else in the node decides access. Each decision carries a reason, which goes to the
caller on a denial and to the audit trail always. Grants (the lists issue) plug in through
``GrantLookup``; until then, no department holds a grant and exchange actions are denied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from security.errors import SecurityError
from security.identity import SYSTEM_ROLE, Principal


class Action(StrEnum):
    CATALOG_READ = "catalog.read"
    CATALOG_CREATE = "catalog.create"
    CATALOG_UPDATE = "catalog.update"
    CATALOG_PUBLISH = "catalog.publish"
    CATALOG_RETIRE = "catalog.retire"
    AUDIT_READ = "audit.read"
    AUDIT_WRITE = "audit.write"
    KEYS_READ = "keys.read"
    EXCHANGE_SUBSCRIBE = "exchange.subscribe"
    EXCHANGE_PULL = "exchange.pull"
    LISTS_READ = "lists.read"
    LISTS_EXPORT_ALL = "lists.export_all"
    OBLIGATION_WRITE = "obligation.write"
    DEMAND_FILE = "demand.file"
    DEMAND_READ = "demand.read"
    DEMAND_CHANGE = "demand.change"
    """Match or withdraw: the requesting department's own business."""
    DEMAND_DECIDE = "demand.decide"
    DEMAND_REVIEW = "demand.review"
    """合规审核: the node's competent department (政务数据主管部门) checks a demand before the provider."""
    DISPUTE_FILE = "dispute.file"
    DISPUTE_READ = "dispute.read"
    DISPUTE_ANSWER = "dispute.answer"
    DISPUTE_DECIDE = "dispute.decide"
    OBJECTION_RAISE = "objection.raise"
    OBJECTION_READ = "objection.read"
    OBJECTION_ANSWER = "objection.answer"
    GRANT_READ = "grant.read"
    GRANT_REVOKE = "grant.revoke"
    EXCHANGE_INGEST = "exchange.ingest"
    EXCHANGE_RECEIPT = "exchange.receipt"
    EXCHANGE_STATUS = "exchange.status"
    PROVIDER_KEY_WRITE = "provider_key.write"
    NODE_OPERATE = "node.operate"
    """The node's running state: health, outbox, dead letters, tier links (the console's operator pages)."""
    CONSUMER_KEY_WRITE = "consumer_key.write"
    RECORDS_QUERY = "records.query"
    """QueryRecords: the current record per key, under a (copy) grant."""
    CHECK_FILE = "check.file"
    """家庭经济状况核对: file a household check (the 核对 centre's consumer)."""
    CHECK_READ = "check.read"
    RECORDS_VERIFY = "records.verify"
    """VerifyClaim: match / no match per asserted item, under a verification grant."""


CATALOG_WRITES = frozenset({Action.CATALOG_CREATE, Action.CATALOG_UPDATE, Action.CATALOG_PUBLISH,
                            Action.CATALOG_RETIRE})


@dataclass(frozen=True)
class Target:
    """What an action is about. For a resource: its code, provider department and whether the version
    concerned is published (a draft is visible to its own department only)."""

    kind: str
    code: str = ""
    owner_department: str = ""
    published: bool = True
    counterpart: str = ""
    """The other department of a demand or grant: the provider asked (the owner is the requester/consumer);
    of a resource records are sent for: the sending department (the owner is the resource's provider)."""
    parties: frozenset[str] = frozenset()
    """The departments a batch was relayed to (a receipt must come from one of them)."""

    @classmethod
    def resource(cls, code: str, owner_department: str, sender: str = "", *, published: bool = True) -> Target:
        return cls("resource", code, owner_department, published, counterpart=sender)

    @classmethod
    def platform(cls, name: str, consumer: str) -> Target:
        return cls("platform", name, consumer)

    @classmethod
    def batch(cls, batch_id: str, owner_department: str, parties: frozenset[str] = frozenset()) -> Target:
        return cls("batch", batch_id, owner_department, parties=parties)

    @classmethod
    def demand(cls, demand_id: str, requester: str, provider: str) -> Target:
        return cls("demand", demand_id, requester, counterpart=provider)

    @classmethod
    def dispute(cls, dispute_id: str, requester: str, provider: str) -> Target:
        return cls("dispute", dispute_id, requester, counterpart=provider)

    @classmethod
    def record(cls, key: str, provider: str, delivered_to: frozenset[str] = frozenset()) -> Target:
        """A stored record of ``provider``; ``parties`` are the departments it was delivered to."""
        return cls("record", key, provider, parties=delivered_to)

    @classmethod
    def objection(cls, objection_id: str, raiser: str, provider: str) -> Target:
        return cls("objection", objection_id, raiser, counterpart=provider)

    @classmethod
    def grant(cls, grant_id: str, consumer: str, provider: str) -> Target:
        return cls("grant", grant_id, consumer, counterpart=provider)

    @classmethod
    def pull(cls, department: str, granted: frozenset[str]) -> Target:
        return cls("pull", department, department, parties=granted)

    @classmethod
    def department(cls, code: str) -> Target:
        return cls("department", code, code)

    def __str__(self) -> str:
        return f"{self.kind}:{self.code}" if self.code else self.kind


AUDIT_TRAIL = Target("audit")
NODE_KEYS = Target("keys")
NODE_STATE = Target("node")
CATALOG = Target("catalog")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    grant: Any = field(default=None, compare=False)
    """The live grant an allowing decision rests on, when it rests on one: the caller that needs the grant
    itself (a query, a verification) takes it from here instead of reading the grants a second time."""

    def __bool__(self) -> bool:
        return self.allowed


class PermissionDenied(SecurityError):
    """The policy said no; the message is the decision's reason."""

    def __init__(self, action: Action, target: Target, reason: str) -> None:
        self.action = action
        self.target = target
        self.reason = reason
        super().__init__(f"{action.value} on {target}: {reason}")


class GrantLookup(Protocol):
    def grant_decision(self, department_code: str, resource_code: str) -> Decision:
        """Whether the department holds a live grant for the resource, and which (or why not)."""
        ...


    def verification_decision(self, department_code: str, resource_code: str) -> Decision:
        """Whether the department holds a live verification grant (kind VERIFY) for the resource."""
        ...


class NoGrants:
    """Nobody holds a grant (a node without the lists, and unit tests)."""

    def grant_decision(self, department_code: str, resource_code: str) -> Decision:
        return Decision(False, f"department {department_code} holds no grant for {resource_code}")

    def verification_decision(self, department_code: str, resource_code: str) -> Decision:
        return Decision(False, f"department {department_code} holds no verification grant for {resource_code}")


def _allow(reason: str) -> Decision:
    return Decision(True, reason)


def _deny(reason: str) -> Decision:
    return Decision(False, reason)


class Policy:
    def __init__(self, grants: GrantLookup | None = None, *, node_department: str = "") -> None:
        self.grants = grants or NoGrants()
        self.node_department = node_department
        """The department running the node (the data authority): it reads and reports the whole lists."""

    def decide(self, principal: Principal, action: Action, target: Target, grants: GrantLookup | None = None
               ) -> Decision:
        if action is Action.AUDIT_WRITE:
            return _deny("the audit trail is append-only: nobody edits it")
        if principal.has(SYSTEM_ROLE):
            return _allow("the node itself")
        if action is Action.KEYS_READ:
            return _allow("the node's public keys are public to every authenticated caller")
        if action is Action.AUDIT_READ:
            if principal.has("security_officer"):
                return _allow("security_officer reads the audit trail")
            return _deny("only a security_officer reads the audit trail")
        if principal.roles <= {"security_officer"}:
            return _deny("a security_officer reads the audit trail and nothing else")
        if action is Action.CATALOG_READ:
            return self._catalog_read(principal, target)
        if action in CATALOG_WRITES:
            return self._catalog_write(principal, action, target)
        if action is Action.EXCHANGE_SUBSCRIBE and target.kind == "platform":
            return self._platform_of(principal, target)
        if action in (Action.EXCHANGE_SUBSCRIBE, Action.EXCHANGE_PULL) and target.kind == "resource":
            return self.grants.grant_decision(principal.department_code, target.code)
        if action is Action.EXCHANGE_PULL:
            return self._pull(principal, target)
        if action in (Action.RECORDS_QUERY, Action.RECORDS_VERIFY):
            return self._ask(principal, action, target, grants or self.grants)
        if action in (Action.CHECK_FILE, Action.CHECK_READ):
            return self._check(principal, action, target)
        if action in _LIST_RULES:
            return _LIST_RULES[action](self, principal, target)
        if action is Action.NODE_OPERATE:
            if principal.has("operator"):
                return _allow("an operator watches the node's running state")
            return _deny("the node's running state is for the operator role")
        return _deny(f"no rule allows {action.value}")

    def lists_visibility(self, principal: Principal) -> str | None:
        """For demands and grants: None when the caller sees all (the node itself, the node's department,
        an operator), else the one department whose demands and grants it sees (its own)."""
        if principal.has(SYSTEM_ROLE) or self._whole_node(principal):
            return None
        return principal.department_code

    def _whole_node(self, principal: Principal) -> bool:
        return principal.has("operator") or bool(self.node_department
                                                  and principal.department_code == self.node_department)

    def pulls_whole_node(self, principal: Principal) -> bool:
        """The ministry platform: a caller with the ``platform`` role of the department running the node pulls
        every stored record (but those of 不予共享 resources, which never leave the node)."""
        return principal.has("platform") and bool(self.node_department) \
            and principal.department_code == self.node_department

    def require(self, principal: Principal, action: Action, target: Target, grants: GrantLookup | None = None
                ) -> Decision:
        """The decision when allowed; PermissionDenied with its reason otherwise. ``grants``: where this one
        decision reads grants (a request's view of the grant cache), instead of the policy's own lookup."""
        decision = self.decide(principal, action, target, grants)
        if not decision.allowed:
            raise PermissionDenied(action, target, decision.reason)
        return decision

    def draft_visibility(self, principal: Principal) -> str | None:
        """For listing: None when every draft is visible (the node itself), else the one department whose
        drafts the caller sees (its own)."""
        return None if principal.has(SYSTEM_ROLE) else principal.department_code

    def _involved(self, principal: Principal, target: Target) -> bool:
        return principal.department_code in (target.owner_department, target.counterpart) or self._whole_node(
            principal)

    def _lists_read(self, principal: Principal, target: Target) -> Decision:
        return _allow("the responsibility list is open to every authenticated department")

    def _lists_export_all(self, principal: Principal, target: Target) -> Decision:
        if self._whole_node(principal):
            return _allow("the node's own department and operators report the whole lists")
        return _deny("the whole node's lists are exported by the node's own department or an operator; "
                     f"department {principal.department_code} may export its own")

    def _obligation_write(self, principal: Principal, target: Target) -> Decision:
        if not principal.has("catalog_admin"):
            return _deny("adding to the responsibility list needs the catalog_admin role")
        if target.owner_department != principal.department_code and not self._whole_node(principal):
            return _deny(f"the obligation is department {target.owner_department}'s; a catalog_admin of "
                         f"{principal.department_code} cannot add it")
        return _allow("catalog_admin of the responsible department")

    def _demand_file(self, principal: Principal, target: Target) -> Decision:
        if not principal.has("consumer"):
            return _deny("filing a demand needs the consumer role")
        if target.owner_department != principal.department_code:
            return _deny(f"a demand is filed by the requesting department itself, not for {target.owner_department}")
        return _allow("consumer of the requesting department")

    def _demand_read(self, principal: Principal, target: Target) -> Decision:
        if self._involved(principal, target):
            return _allow("the requesting or the providing department")
        return _deny(f"demand {target.code} concerns departments {target.owner_department} and "
                     f"{target.counterpart or '(not yet matched)'} only")

    def _demand_change(self, principal: Principal, target: Target) -> Decision:
        if principal.has("consumer") and principal.department_code == target.owner_department:
            return _allow("consumer of the requesting department")
        return _deny(f"only a consumer of the requesting department {target.owner_department} may change demand "
                     f"{target.code}")

    def _demand_decide(self, principal: Principal, target: Target) -> Decision:
        if not principal.has("reviewer"):
            return _deny("deciding a demand needs the reviewer role")
        if principal.department_code != target.counterpart:
            return _deny(f"demand {target.code} is decided by a reviewer of the providing department "
                         f"{target.counterpart}, not of {principal.department_code}")
        return _allow("reviewer of the providing department")

    def _demand_review(self, principal: Principal, target: Target) -> Decision:
        return self._coordinator(principal, f"the compliance review of demand {target.code}")

    def _dispute_file(self, principal: Principal, target: Target) -> Decision:
        if principal.has("consumer") and principal.department_code == target.owner_department:
            return _allow("consumer of the refused requesting department")
        return _deny(f"a refusal of demand {target.code} is contested by a consumer of the requesting department "
                     f"{target.owner_department}")

    def _dispute_read(self, principal: Principal, target: Target) -> Decision:
        if self._involved(principal, target):
            return _allow("the requesting or the providing department, or the node's department")
        return _deny(f"dispute {target.code} concerns departments {target.owner_department} and {target.counterpart}")

    def _dispute_answer(self, principal: Principal, target: Target) -> Decision:
        if principal.has("reviewer") and principal.department_code == target.counterpart:
            return _allow("reviewer of the providing department")
        return _deny(f"dispute {target.code} is answered by a reviewer of the providing department "
                     f"{target.counterpart}")

    def _dispute_decide(self, principal: Principal, target: Target) -> Decision:
        return self._coordinator(principal, f"deciding dispute {target.code}")

    def _objection_raise(self, principal: Principal, target: Target) -> Decision:
        if not principal.has("consumer"):
            return _deny("raising an objection to a record needs the consumer role")
        if principal.department_code not in target.parties:
            return _deny(f"record {target.code} was never delivered to department {principal.department_code}: "
                         "only a department that received a record objects to it")
        return _allow("consumer of a department the record was delivered to")

    def _objection_read(self, principal: Principal, target: Target) -> Decision:
        if self._involved(principal, target):
            return _allow("the objecting or the providing department, or the node's department")
        return _deny(f"objection {target.code} concerns departments {target.owner_department} and "
                     f"{target.counterpart}")

    def _objection_answer(self, principal: Principal, target: Target) -> Decision:
        if (principal.has("reviewer") or principal.has("provider")) and principal.department_code == target.counterpart:
            return _allow("reviewer or provider of the providing department checks its record")
        return _deny(f"objection {target.code} is checked by a reviewer or provider of the providing department "
                     f"{target.counterpart}")

    def _coordinator(self, principal: Principal, what: str) -> Decision:
        """The coordinator role of the department running the node (政务数据主管部门) reviews, coordinates
        and decides disputes; the same role in another department does not."""
        if not principal.has("coordinator"):
            return _deny(f"{what} needs the coordinator role (政务数据主管部门)")
        if not self.node_department:
            return _deny(f"{what} is done by a coordinator of the department running the node; set "
                         "node.department_code in exnode.toml (or EXNODE_NODE_DEPARTMENT_CODE) and restart")
        if principal.department_code != self.node_department:
            return _deny(f"{what} is done by a coordinator of the department running the node "
                         f"({self.node_department}), not of {principal.department_code}")
        return _allow("coordinator of the department running the node")

    def _grant_read(self, principal: Principal, target: Target) -> Decision:
        if self._involved(principal, target):
            return _allow("the consuming or the providing department")
        return _deny(f"grant {target.code} concerns departments {target.owner_department} and {target.counterpart}")

    def _grant_revoke(self, principal: Principal, target: Target) -> Decision:
        if principal.has("reviewer") and principal.department_code == target.counterpart:
            return _allow("reviewer of the providing department")
        return _deny(f"grant {target.code} is revoked by a reviewer of the providing department {target.counterpart}")

    def _exchange_ingest(self, principal: Principal, target: Target) -> Decision:
        if target.kind == "resource":
            return self._exchange_provide(principal, target)
        if not (principal.has("provider") or principal.has("platform")):
            return _deny("sending records needs the provider or platform role")
        if principal.department_code != target.owner_department:
            return _deny(f"records of department {target.owner_department} are sent by that department, not by "
                         f"{principal.department_code}")
        return _allow("provider of the sending department")

    def _exchange_provide(self, principal: Principal, target: Target) -> Decision:
        """Records for a resource come from the department responsible for it (its provider)."""
        if target.counterpart != target.owner_department:
            return _deny(f"department {target.counterpart} is not responsible for {target.code} (its provider is "
                         f"{target.owner_department})")
        return _allow("the resource's provider sends its records")

    def _exchange_receipt(self, principal: Principal, target: Target) -> Decision:
        if target.owner_department != principal.department_code:
            return _deny(f"a receipt of department {target.owner_department} is sent by that department, not "
                         f"{principal.department_code}")
        if target.kind == "batch" and target.owner_department not in target.parties:
            return _deny(f"batch {target.code} was not sent to department {target.owner_department}")
        return _allow("a department the batch was relayed to acknowledges it")

    def _exchange_status(self, principal: Principal, target: Target) -> Decision:
        if target.owner_department != principal.department_code:
            return _deny(f"batch {target.code} belongs to department {target.owner_department}")
        return _allow("the providing department follows its batch")

    @staticmethod
    def _platform_of(principal: Principal, target: Target) -> Decision:
        if target.owner_department != principal.department_code:
            return _deny(f"platform {target.code} receives for department {target.owner_department}, not "
                         f"{principal.department_code}")
        return _allow("the platform receives for the caller's department")

    def _pull(self, principal: Principal, target: Target) -> Decision:
        """Who may pull at all: the target's ``parties`` are the resources the caller holds live grants for
        (what it pulls unless ``pulls_whole_node``)."""
        if self.pulls_whole_node(principal):
            return _allow("the platform of the department running the node pulls everything shareable")
        if not (principal.has("consumer") or principal.has("platform")):
            return _deny("pulling needs the consumer or platform role")
        granted = len(target.parties)
        if granted:
            return _allow(f"department {principal.department_code} pulls the {granted} resources it is granted")
        hint = ""
        if principal.has("platform") and not self.node_department:
            hint = ("; the ministry platform's pull of everything needs the node's own department: set "
                    "node.department_code in exnode.toml (or EXNODE_NODE_DEPARTMENT_CODE) and restart")
        elif principal.has("platform"):
            hint = f" (it is not this node's department, {self.node_department})"
        return _deny(f"department {principal.department_code} holds no live grant: there is nothing it may pull{hint}")

    def _ask(self, principal: Principal, action: Action, target: Target, grants: GrantLookup) -> Decision:
        """The request/response mode (接口): a consumer (or its platform) asks about records of a resource
        it holds a live grant of the right kind for; a 不予共享 resource's records are never queried."""
        if not (principal.has("consumer") or principal.has("platform")):
            return _deny(f"{action.value} needs the consumer or platform role")
        if action is Action.RECORDS_VERIFY:
            return grants.verification_decision(principal.department_code, target.code)
        return grants.grant_decision(principal.department_code, target.code)

    def _check(self, principal: Principal, action: Action, target: Target) -> Decision:
        """A household check is filed by a consumer of its department and read by that department."""
        if action is Action.CHECK_FILE and not principal.has("consumer"):
            return _deny("filing a household check needs the consumer role")
        if target.owner_department != principal.department_code and not self._whole_node(principal):
            return _deny(f"the check belongs to department {target.owner_department}")
        return _allow("the checking department")

    def _provider_key_write(self, principal: Principal, target: Target) -> Decision:
        if principal.has("catalog_admin") and principal.department_code == target.owner_department:
            return _allow("catalog_admin of the department registers its keys")
        if principal.has("operator"):
            return _allow("an operator registers departments' keys")
        return _deny(f"keys of department {target.owner_department} are registered by its catalog_admin or an "
                     "operator")

    def _consumer_key_write(self, principal: Principal, target: Target) -> Decision:
        if principal.department_code == target.owner_department and (principal.has("consumer")
                                                                      or principal.has("catalog_admin")):
            return _allow("a consumer department registers the key its messages are sealed to")
        if principal.has("operator"):
            return _allow("an operator registers departments' keys")
        return _deny(f"encryption keys of department {target.owner_department} are registered by its consumer "
                     "or catalog_admin, or an operator")

    @staticmethod
    def _catalog_read(principal: Principal, target: Target) -> Decision:
        if target.published:
            return _allow("the published catalog is readable by every authenticated department")
        if target.owner_department and target.owner_department == principal.department_code:
            return _allow("a draft is visible to its own department")
        return _deny(f"{target.code or 'the resource'} is a draft of department {target.owner_department}; drafts "
                     "are visible to their own department only")

    @staticmethod
    def _catalog_write(principal: Principal, action: Action, target: Target) -> Decision:
        if not principal.has("catalog_admin"):
            return _deny(f"{action.value} needs the catalog_admin role (the caller has: "
                         f"{', '.join(sorted(principal.roles))})")
        if target.owner_department != principal.department_code:
            return _deny(f"{target.code} belongs to department {target.owner_department}; a catalog_admin of "
                         f"{principal.department_code} cannot change it")
        return _allow("catalog_admin of the provider department")


_LIST_RULES = {
    Action.LISTS_READ: Policy._lists_read,
    Action.LISTS_EXPORT_ALL: Policy._lists_export_all,
    Action.OBLIGATION_WRITE: Policy._obligation_write,
    Action.DEMAND_FILE: Policy._demand_file,
    Action.DEMAND_READ: Policy._demand_read,
    Action.DEMAND_CHANGE: Policy._demand_change,
    Action.DEMAND_DECIDE: Policy._demand_decide,
    Action.DEMAND_REVIEW: Policy._demand_review,
    Action.DISPUTE_FILE: Policy._dispute_file,
    Action.DISPUTE_READ: Policy._dispute_read,
    Action.DISPUTE_ANSWER: Policy._dispute_answer,
    Action.DISPUTE_DECIDE: Policy._dispute_decide,
    Action.OBJECTION_RAISE: Policy._objection_raise,
    Action.OBJECTION_READ: Policy._objection_read,
    Action.OBJECTION_ANSWER: Policy._objection_answer,
    Action.GRANT_READ: Policy._grant_read,
    Action.GRANT_REVOKE: Policy._grant_revoke,
    Action.EXCHANGE_INGEST: Policy._exchange_ingest,
    Action.EXCHANGE_RECEIPT: Policy._exchange_receipt,
    Action.EXCHANGE_STATUS: Policy._exchange_status,
    Action.PROVIDER_KEY_WRITE: Policy._provider_key_write,
    Action.CONSUMER_KEY_WRITE: Policy._consumer_key_write,
}
