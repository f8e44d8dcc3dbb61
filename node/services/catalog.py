"""Catalog use cases: each is one unit of work; the domain decides, the repository persists."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

from catalog import model
from catalog.errors import (
    AlreadyExists,
    Conflict,
    EntryProblems,
    FieldProblem,
    IllegalTransition,
    InvalidBatch,
    InvalidField,
    NotFound,
)
from catalog.model import Resource, ResourceMetadata, ResourceVersion
from node.storage.catalog_repository import CatalogRepository, ResourceFilter
from node.storage.search_index import RELEVANCE_RANKS
from node.storage.unit_of_work import UnitOfWorkFactory
from security import page_tokens
from security.identity import Principal
from security.keys import MacKeys, UnusableKey
from security.policy import Action, PermissionDenied, Policy, Target

Clock = Callable[[], dt.datetime]
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_IMPORT = 20_000
COUNT_LIMIT = 10_000
"""Totals are exact up to this; beyond it a page says "more than COUNT_LIMIT" (a count never scans all)."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SearchOrder(enum.Enum):
    """The order of a catalog page (proto SearchOrder)."""

    CODE = "code"
    RELEVANCE = "relevance"


@dataclass(frozen=True)
class Page:
    resources: list[Resource]
    next_page_token: str
    total_size: int
    total_is_lower_bound: bool = False
    """True when more than COUNT_LIMIT resources match: ``total_size`` is then COUNT_LIMIT ("10,000+")."""


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    published: int
    unchanged: int = 0
    """Entries equal to the resource's latest version (an upsert leaves them alone)."""


class CatalogApplication:
    """The catalog's use cases, shared by the gRPC servicer, ``exnode init --sample`` and the bench."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock = utc_now, policy: Policy | None = None,
                 changed: Callable[[], None] = lambda: None, macs: MacKeys | None = None) -> None:
        self.uow = uow
        self.macs = macs or _process_mac_keys()
        """MACs the page tokens (the node's keys, so a token outlives a restart and works on every replica)."""
        self.clock = clock
        self.policy = policy or Policy()
        self.changed = changed
        """Called after each committed change: wakes this process's catalog feed readers."""

    # -- commands ----------------------------------------------------------------------------
    def create(self, principal: Principal, meta: ResourceMetadata) -> Resource:
        now = self.clock()
        resource = model.create(meta, now)  # validates first: a bad provider code is INVALID_ARGUMENT
        self.policy.require(principal, Action.CATALOG_CREATE, Target.resource(meta.code, meta.provider_code))
        with self.uow(write=True) as uow:
            if uow.catalog.get(meta.code) is not None:
                raise AlreadyExists("resource", meta.code)
            _check_related(uow.catalog, meta, also_known=())
            uow.catalog.add(resource, now)
            uow.catalog.append_events([("CREATED", resource)], now)
            uow.commit()
        self.changed()
        return resource

    def update(self, principal: Principal, meta: ResourceMetadata, expected_version: int = 0) -> Resource:
        now = self.clock()
        with self.uow(write=True) as uow:
            current = self._load_for_change(uow.catalog, meta.code, expected_version, principal, Action.CATALOG_UPDATE)
            changed = model.edit(current, meta, now)
            _check_related(uow.catalog, meta, also_known=())
            uow.catalog.save(changed, current, now)
            uow.catalog.append_events([("UPDATED", changed)], now)
            uow.commit()
        self.changed()
        return changed

    def publish(self, principal: Principal, code: str, expected_version: int = 0) -> Resource:
        now = self.clock()
        with self.uow(write=True) as uow:
            current = self._load_for_change(uow.catalog, code, expected_version, principal, Action.CATALOG_PUBLISH)
            published = model.publish(current, now)
            # A related resource may have been retired since the draft was written; check again.
            _check_related(uow.catalog, published.latest.metadata, also_known=())
            uow.catalog.save(published, current, now)
            uow.catalog.append_events([("PUBLISHED", published)], now)
            uow.commit()
        self.changed()
        return published

    def retire(self, principal: Principal, code: str) -> Resource:
        now = self.clock()
        with self.uow(write=True) as uow:
            current = self._load_for_change(uow.catalog, code, 0, principal, Action.CATALOG_RETIRE)
            retired = model.retire(current, now)
            uow.catalog.save(retired, current, now)
            uow.catalog.append_events([("RETIRED", retired)], now)
            uow.commit()
        self.changed()
        return retired

    def import_resources(
        self, principal: Principal, entries: Sequence[ResourceMetadata | InvalidField], *, publish: bool = False,
        replace_drafts: bool = False, upsert: bool = False,
    ) -> ImportResult:
        """Atomic import: every entry is checked first and all problems reported together; only a
        clean batch is written, in one transaction. Entries that failed parsing arrive as their error.

        ``upsert`` makes an export → import round trip work: an entry equal to its resource's latest
        version is unchanged; a changed draft is updated; a changed published resource gets a new draft
        (published versions are immutable), published at once only with ``publish``."""
        if len(entries) > MAX_IMPORT:
            raise InvalidField.one("resources", f"{len(entries)} entries; at most {MAX_IMPORT} per import")
        now = self.clock()
        bad: list[EntryProblems] = []
        valid: list[tuple[int, ResourceMetadata]] = []
        first_index: dict[str, int] = {}
        for index, entry in enumerate(entries):
            if isinstance(entry, InvalidField):
                bad.append(EntryProblems(index, "", entry.problems))
                continue
            problems = model.metadata_problems(entry)
            if entry.code in first_index:
                problems.append(FieldProblem("code", f"{entry.code} appears twice (also entry {first_index[entry.code]})"))
            else:
                first_index[entry.code] = index
            if problems:
                bad.append(EntryProblems(index, entry.code, problems))
            else:
                valid.append((index, entry))
        with self.uow(write=True) as uow:
            existing = {code: uow.catalog.get(code) for code in uow.catalog.existing_codes(first_index)}
            related_wanted = {c for _, meta in valid for c in meta.related_codes}
            known = uow.catalog.existing_codes(related_wanted - set(first_index)) | set(first_index)
            new: list[Resource] = []
            changed: list[tuple[Resource, Resource]] = []
            unchanged = 0
            written: list[tuple[int, ResourceMetadata]] = []
            for index, meta in valid:
                problems = [FieldProblem(f"related_codes[{i}]", f"{c} is not in the catalog or this file")
                            for i, c in enumerate(meta.related_codes) if c not in known]
                current = existing.get(meta.code)
                if current is not None and upsert:
                    if current.status is model.ResourceStatus.RETIRED:
                        problems.append(FieldProblem("code", f"{meta.code} is retired; a retired resource is "
                                                             "closed (register it under a new code)"))
                    elif current.provider_code != meta.provider_code:
                        problems.append(FieldProblem("provider_code", f"{meta.code} belongs to provider "
                                                                      f"{current.provider_code}"))
                    elif current.latest.metadata == meta:
                        if not problems:
                            unchanged += 1
                            continue
                elif current is not None and not (replace_drafts and current.status is model.ResourceStatus.DRAFT):
                    problems.append(FieldProblem("code", f"{meta.code} already exists ({current.status.value})"))
                if problems:
                    bad.append(EntryProblems(index, meta.code, problems))
                    continue
                if current is None:
                    resource = (model.create_published(meta, now) if publish
                                else model.create(meta, now, checked=True))
                else:
                    resource = model.edit(current, meta, now)
                    if publish:
                        resource = model.publish(resource, now)
                written.append((index, meta))
                if current is None:
                    new.append(resource)
                else:
                    changed.append((resource, current))
            if bad:
                raise InvalidBatch(sorted(bad, key=lambda e: e.index))
            self._require_import(principal, written, publish)  # unchanged entries need no right to change
            uow.catalog.add_many(new, now)
            for resource, current in changed:
                uow.catalog.save(resource, current, now)
            events = [("CREATED", r) for r in new] + [("UPDATED", r) for r, _ in changed]
            if publish:
                events += [("PUBLISHED", r) for r in new] + [("PUBLISHED", r) for r, _ in changed]
            uow.catalog.append_events(events, now)
            uow.commit()
        self.changed()
        return ImportResult(len(new), len(changed), len(new) + len(changed) if publish else 0, unchanged)

    def _require_import(self, principal: Principal, entries: Sequence[tuple[int, ResourceMetadata]],
                        publish: bool) -> None:
        """Every valid entry must be one the caller may create (and publish); the first refusals are named."""
        refused = []
        for index, entry in entries:
            target = Target.resource(entry.code, entry.provider_code)
            for action in (Action.CATALOG_CREATE, *((Action.CATALOG_PUBLISH,) if publish else ())):
                decision = self.policy.decide(principal, action, target)
                if not decision:
                    refused.append(f"resources[{index}] {entry.code}: {decision.reason}")
                    break
        if refused:
            more = f" (and {len(refused) - 5} more)" if len(refused) > 5 else ""
            raise PermissionDenied(Action.CATALOG_CREATE, Target("import"), "; ".join(refused[:5]) + more)

    # -- queries -----------------------------------------------------------------------------
    def _may_see_drafts(self, principal: Principal, resource: Resource) -> bool:
        target = Target.resource(resource.code, resource.provider_code, published=False)
        return bool(self.policy.decide(principal, Action.CATALOG_READ, target))

    def get(self, principal: Principal, code: str, version: int = 0) -> tuple[Resource, ResourceVersion]:
        """The latest version the caller may see: other departments see the published version, not a
        pending draft; a draft-only resource is visible to its own department only."""
        with self.uow() as uow:
            resource = uow.catalog.get(code)
            if resource is None:
                raise NotFound("resource", code)
            drafts = self._may_see_drafts(principal, resource)
            if not drafts:
                self.policy.require(principal, Action.CATALOG_READ, Target.resource(
                    code, resource.provider_code, published=resource.published_version is not None))
            if version == 0:
                version = resource.latest.version if drafts else resource.published_version or 0
            # The latest version is served as is only when the caller may see it: asking another department's
            # pending draft by its number goes through the draft check below.
            latest_visible = drafts or resource.latest.state is model.VersionState.PUBLISHED
            if version == resource.latest.version and latest_visible:
                return resource, resource.latest
            found = uow.catalog.get_version(code, version)
            if found is None:
                raise NotFound("version", f"{version} of {code} (latest is {resource.latest.version})")
            if found.state is not model.VersionState.PUBLISHED:
                self.policy.require(principal, Action.CATALOG_READ,
                                    Target.resource(code, resource.provider_code, published=False))
            return _as_seen(resource, found, drafts), found

    def history(self, principal: Principal, code: str) -> list[ResourceVersion]:
        with self.uow() as uow:
            resource = uow.catalog.get(code)
            if resource is None:
                raise NotFound("resource", code)
            versions = uow.catalog.history(code)
        if self._may_see_drafts(principal, resource):
            return versions
        self.policy.require(principal, Action.CATALOG_READ, Target.resource(
            code, resource.provider_code, published=resource.published_version is not None))
        return [v for v in versions if v.state is model.VersionState.PUBLISHED]

    def list(self, principal: Principal, flt: ResourceFilter, page_size: int = 0, page_token: str = "",
             order: SearchOrder = SearchOrder.CODE) -> Page:
        """A page of the filter's resources in code order, or in relevance order (name before summary
        before items and keywords, then code); the token carries the order's position and the total."""
        self.policy.require(principal, Action.CATALOG_READ, Target("catalog"))
        flt = replace(flt, visible_to=self.policy.draft_visibility(principal))
        if page_size > MAX_PAGE_SIZE:
            raise InvalidField.one("page_size", f"{page_size} is more than the maximum {MAX_PAGE_SIZE}")
        size = page_size or DEFAULT_PAGE_SIZE
        if len(flt.query) > 200:
            raise InvalidField.one("query", f"{len(flt.query)} characters, at most 200")
        rank, after, total = _decode_page_token(self.macs, page_token, flt, order)
        with self.uow() as uow:
            if order is SearchOrder.RELEVANCE:
                ranked, counted = uow.catalog.search_by_relevance(flt, after=(rank, after), limit=size + 1)
                rows = [resource for _rank, resource in ranked]
            else:
                ranked = []
                rows, counted = uow.catalog.search(flt, after_code=after, limit=size + 1)
            more = len(rows) > size
            if not page_token:
                # Counted once, for the first page (later pages carry it in their token), and only when
                # there is more than one page and the search did not count on its way.
                if not more:
                    total = len(rows)
                elif counted is not None:
                    total = counted
                else:
                    total = uow.catalog.count(flt, at_most=COUNT_LIMIT + 1)
        rows = rows[:size]
        last_rank = ranked[size - 1][0] if more and ranked else 0
        token = _encode_page_token(self.macs, last_rank, rows[-1].code, flt, order, total) if more else ""
        return Page(rows, token, min(total, COUNT_LIMIT), total > COUNT_LIMIT)

    def export(self, principal: Principal, status: model.ResourceStatus | None) -> list[Resource]:
        """Every resource in the given status (published by default) that the caller may see."""
        self.policy.require(principal, Action.CATALOG_READ, Target("catalog"))
        flt = ResourceFilter(status=status or model.ResourceStatus.PUBLISHED,
                             visible_to=self.policy.draft_visibility(principal))
        with self.uow() as uow:
            return uow.catalog.all(flt)

    def counts(self) -> dict[str, int]:
        with self.uow() as uow:
            return uow.catalog.count_by_status()

    def _load_for_change(self, repo: CatalogRepository, code: str, expected_version: int, principal: Principal,
                         action: Action) -> Resource:
        current = repo.get(code, for_update=True)
        if current is None:
            raise NotFound("resource", code)
        if current.origin_node:
            raise IllegalTransition(current.status.value, action.value.split(".")[-1],
                                    f"{code} is a read-only entry of node {current.origin_node}; it is changed there")
        self.policy.require(principal, action, Target.resource(code, current.provider_code))
        if expected_version and current.latest.version != expected_version:
            raise Conflict(
                f"resource {code} is at version {current.latest.version}, not the expected {expected_version}; "
                "read it again and retry")
        return current


def _as_seen(resource: Resource, version: ResourceVersion, drafts: bool) -> Resource:
    """The resource head as a caller who cannot see drafts sees it: its latest is the published one."""
    return resource if drafts or version.state is model.VersionState.DRAFT else replace(resource, latest=version)


def _check_related(repo: CatalogRepository, meta: ResourceMetadata, also_known: Sequence[str]) -> None:
    missing = set(meta.related_codes) - repo.existing_codes(meta.related_codes) - set(also_known)
    problems = [FieldProblem(f"related_codes[{i}]", f"{c} is not in the catalog")
                for i, c in enumerate(meta.related_codes) if c in missing]
    if problems:
        raise InvalidField(problems)


@lru_cache(maxsize=1024)
def _filter_fingerprint(flt: ResourceFilter, order: SearchOrder = SearchOrder.CODE) -> str:
    """Remembered per (filter, order), both immutable: hashing the JSON each time was a tenth of a search
    answered from the index's first page."""
    fields = asdict(flt)
    if order is not SearchOrder.CODE:  # code-order fingerprints stay those of earlier tokens
        fields["order"] = order.value
    blob = json.dumps(fields, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


PAGE_TOKEN_PREFIX = "cp1."
PAGE_TOKEN_PURPOSE = "catalog page token v1"


def _process_mac_keys() -> MacKeys:
    """MAC keys for an application built without the node's keys (tests, the bench, init --sample):
    a random key, so its tokens are good within this process only."""
    key = secrets.token_bytes(32)

    def derive(purpose: str, kid: str) -> bytes:
        if kid not in ("", "process"):
            raise UnusableKey(f"{kid} is not a key of this process")
        return hmac.new(key, purpose.encode(), hashlib.sha256).digest()

    return MacKeys("process", derive)


def _encode_page_token(macs: MacKeys, rank: int, after: str, flt: ResourceFilter, order: SearchOrder,
                       total: int) -> str:
    fields = {"after": after, "filter": _filter_fingerprint(flt, order), "total": total}
    if rank:
        fields["rank"] = rank
    return page_tokens.issue(PAGE_TOKEN_PREFIX, fields, macs.key(PAGE_TOKEN_PURPOSE), macs.active_kid)


def _decode_page_token(macs: MacKeys, token: str, flt: ResourceFilter,
                       order: SearchOrder = SearchOrder.CODE) -> tuple[int, str, int]:
    """The relevance rank and last code of the previous page and the total counted for the first page; a
    token this node did not issue (edited, forged, another node's) is refused naming ``page_token``."""
    if not token:
        return 0, "", 0

    def mac_key(kid: str) -> bytes:
        try:
            return macs.key(PAGE_TOKEN_PURPOSE, kid)
        except UnusableKey as error:
            raise KeyError(kid) from error

    try:
        data = page_tokens.check(PAGE_TOKEN_PREFIX, token, mac_key)
        after, fingerprint, total, rank = data["after"], data["filter"], data["total"], data.get("rank", 0)
    except page_tokens.PageTokenRefused as error:
        raise InvalidField.one("page_token", str(error)) from None
    except KeyError:
        raise InvalidField.one("page_token", "is not a page token this node issued") from None
    if not isinstance(after, str) or not isinstance(fingerprint, str) or not isinstance(total, int) or \
            type(rank) is not int or not 0 <= rank < RELEVANCE_RANKS:
        raise InvalidField.one("page_token", "is not a page token this node issued")
    if fingerprint != _filter_fingerprint(flt, order):
        raise InvalidField.one("page_token", "was issued for other filters or another order; start again without "
                               "a token")
    return rank, after, total
