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

    @classmethod
    def resource(cls, code: str, owner_department: str, *, published: bool = True) -> Target:
        return cls("resource", code, owner_department, published)

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
    def has_grant(self, department_code: str, resource_code: str, action: Action) -> bool:
        """Whether the department holds a live grant for the resource."""
        ...


class NoGrants:
    """Before the lists issue: nobody holds a grant."""

    def has_grant(self, department_code: str, resource_code: str, action: Action) -> bool:
        return False


def _allow(reason: str) -> Decision:
    return Decision(True, reason)


def _deny(reason: str) -> Decision:
    return Decision(False, reason)


class Policy:
    def __init__(self, grants: GrantLookup | None = None) -> None:
        self.grants = grants or NoGrants()

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
            if self.grants.has_grant(principal.department_code, target.code, action):
                return _allow(f"department {principal.department_code} holds a grant for {target.code}")
            return _deny(f"department {principal.department_code} holds no grant for {target.code}")
        return _deny(f"no rule allows {action.value}")

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
