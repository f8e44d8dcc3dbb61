"""The one place that decides who may do what (DESIGN.md §8).

Every servicer and use case asks ``Policy.decide`` (or ``require``) with the caller, the action and the
target; nothing else in the node decides access. Each decision carries a reason, which goes to the
caller on a denial and to the audit trail always. Grants (the lists issue) plug in through
``GrantLookup``; until then, no department holds a grant and exchange actions are denied.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

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
    GRANT_READ = "grant.read"
    GRANT_REVOKE = "grant.revoke"
    EXCHANGE_INGEST = "exchange.ingest"
    PROVIDER_KEY_WRITE = "provider_key.write"


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
    """The other department of a demand or grant: the provider asked (the owner is the requester/consumer)."""

    @classmethod
    def resource(cls, code: str, owner_department: str, *, published: bool = True) -> Target:
        return cls("resource", code, owner_department, published)

    @classmethod
    def demand(cls, demand_id: str, requester: str, provider: str) -> Target:
        return cls("demand", demand_id, requester, counterpart=provider)

    @classmethod
    def grant(cls, grant_id: str, consumer: str, provider: str) -> Target:
        return cls("grant", grant_id, consumer, counterpart=provider)

    @classmethod
    def department(cls, code: str) -> Target:
        return cls("department", code, code)

    def __str__(self) -> str:
        return f"{self.kind}:{self.code}" if self.code else self.kind


AUDIT_TRAIL = Target("audit")
NODE_KEYS = Target("keys")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


class PermissionDenied(Exception):
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


class NoGrants:
    """Nobody holds a grant (a node without the lists, and unit tests)."""

    def grant_decision(self, department_code: str, resource_code: str) -> Decision:
        return Decision(False, f"department {department_code} holds no grant for {resource_code}")


def _allow(reason: str) -> Decision:
    return Decision(True, reason)


def _deny(reason: str) -> Decision:
    return Decision(False, reason)


class Policy:
    def __init__(self, grants: GrantLookup | None = None, *, node_department: str = "") -> None:
        self.grants = grants or NoGrants()
        self.node_department = node_department
        """The department running the node (the data authority): it reads and reports the whole lists."""

    def decide(self, principal: Principal, action: Action, target: Target) -> Decision:
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
        if action in (Action.EXCHANGE_SUBSCRIBE, Action.EXCHANGE_PULL):
            return self.grants.grant_decision(principal.department_code, target.code)
        if action in _LIST_RULES:
            return _LIST_RULES[action](self, principal, target)
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

    def require(self, principal: Principal, action: Action, target: Target) -> Decision:
        """The decision when allowed; PermissionDenied with its reason otherwise."""
        decision = self.decide(principal, action, target)
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

    def _grant_read(self, principal: Principal, target: Target) -> Decision:
        if self._involved(principal, target):
            return _allow("the consuming or the providing department")
        return _deny(f"grant {target.code} concerns departments {target.owner_department} and {target.counterpart}")

    def _grant_revoke(self, principal: Principal, target: Target) -> Decision:
        if principal.has("reviewer") and principal.department_code == target.counterpart:
            return _allow("reviewer of the providing department")
        return _deny(f"grant {target.code} is revoked by a reviewer of the providing department {target.counterpart}")

    def _exchange_ingest(self, principal: Principal, target: Target) -> Decision:
        if not (principal.has("provider") or principal.has("platform")):
            return _deny("sending records needs the provider or platform role")
        if principal.department_code != target.owner_department:
            return _deny(f"records of department {target.owner_department} are sent by that department, not by "
                         f"{principal.department_code}")
        return _allow("provider of the sending department")

    def _provider_key_write(self, principal: Principal, target: Target) -> Decision:
        if principal.has("catalog_admin") and principal.department_code == target.owner_department:
            return _allow("catalog_admin of the department registers its keys")
        if principal.has("operator"):
            return _allow("an operator registers departments' keys")
        return _deny(f"keys of department {target.owner_department} are registered by its catalog_admin or an "
                     "operator")

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
    Action.GRANT_READ: Policy._grant_read,
    Action.GRANT_REVOKE: Policy._grant_revoke,
    Action.EXCHANGE_INGEST: Policy._exchange_ingest,
    Action.PROVIDER_KEY_WRITE: Policy._provider_key_write,
}
