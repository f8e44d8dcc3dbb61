"""The bootstrap: config → database → keys → identity, policy, audit → applications, built in one
place (STYLE.md §4). Tests build the same graph with their own config."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine

from adapters.platforms import Platform, load_platforms
from adapters.rabbit import Dispatcher, declare_queue, publish_confirmed
from adapters.rabbit import names as rabbit_names
from adapters.rabbit.fanout import CatalogFanoutPublisher
from adapters.rabbit.inbound import InboundConsumer
from adapters.rabbit.rpc import RpcClient, RpcResponder, Transient
from adapters.rabbit.uplink import CatalogUplink
from catalog.lists import Deadlines
from catalog.workdays import BEIJING, beijing_date
from node.config import Config, ConfigError
from node.files.catalog import read_catalog_file
from node.files.holidays import HolidayFileError, load_calendar
from node.ops.workers import Worker
from node.pipeline import Ingest, Limits, build_dispatcher, inbound_handler
from node.pipeline.dispatcher_process import DispatcherProcess
from node.pipeline.metered import MeteredExchange, MeteredIngest, MeteredQuery
from node.pipeline.tiers import Message, PeerConfigError, TierApplication, load_peer_documents, load_peers
from node.services.audit import AuditApplication, AuditSettings, AuditWriter
from node.services.catalog import CatalogApplication, Clock, utc_now
from node.services.catalog_feed import CatalogFeed, FeedFanoutSource
from node.services.checks import CORRELATION_PREFIX, CheckApplication
from node.services.disputes import DisputesApplication
from node.services.exchange import ExchangeApplication
from node.services.lists import ListsApplication
from node.services.objections import ObjectionsApplication
from node.services.pull import PullApplication, PullSettings
from node.services.query import QueryApplication
from node.services.remote import CALLER_LEFT, RemoteAnswerer, RemoteQueries
from node.services.report import ReportApplication
from node.services.timestamps import Timestamps
from node.storage.database import make_engine, migrate
from node.storage.secrecy import Sealer
from node.storage.unit_of_work import SqlUnitOfWorkFactory, UnitOfWork
from security.audit import AuditRecord
from security.broker_sealing import NotSealed, Sealing, load_peer_keys, node_key
from security.identity import (
    Principal,
    TokenVerifier,
    TrustedIssuer,
    dev_issuer,
    load_jwks,
    load_pem_public_key,
)
from security.keyed_hash import INDEX_PURPOSE, KeyHasher
from security.keys import KeyStore
from security.policy import Policy
from security.sealing import ConsumerPrivateKey
from security.timestamps import TimestampInvalid, load_roots

log = logging.getLogger(__name__)


@dataclass
class Node:
    config: Config
    engine: Engine
    keys: KeyStore
    verifier: TokenVerifier
    policy: Policy
    catalog: CatalogApplication
    lists: ListsApplication
    disputes: DisputesApplication
    objections: ObjectionsApplication
    report: ReportApplication
    uow: SqlUnitOfWorkFactory
    ingest: Ingest
    exchange: ExchangeApplication
    audit: AuditApplication
    audit_writer: AuditWriter
    feed: CatalogFeed
    pull: PullApplication
    tiers: TierApplication
    query: QueryApplication
    checks: CheckApplication
    timestamps: Timestamps | None = None
    peers: dict = field(default_factory=dict)
    """node id → (kid → public key) of the trusted peers (exchange.peers_dir)."""
    rpc_responder: RpcResponder | None = None
    rpc_client: RpcClient | None = None
    dispatcher: Dispatcher | DispatcherProcess | None = None
    inbound: InboundConsumer | None = None
    fanout: CatalogFanoutPublisher | None = None
    uplink: CatalogUplink | None = None

    def start_dispatcher(self, *, process: bool | None = None) -> Dispatcher | DispatcherProcess:
        """Relay the outbox to RabbitMQ (``exnode serve`` does, when exchange.dispatch): in a process of
        its own (exchange.dispatch_process; ``process`` overrides it) or in a thread of this one."""
        self._declare_topology()
        dispatcher: Dispatcher | DispatcherProcess
        if self.config.exchange.dispatch_process if process is None else process:
            root = logging.getLogger()
            dispatcher = DispatcherProcess(self.config, logging.getLevelName(root.getEffectiveLevel()),
                                           self.config.server.log_format)
        else:
            dispatcher = build_dispatcher(self.config, self.uow, self.catalog.clock, self.lists)
        self.dispatcher = dispatcher
        self.ingest.on_outbox = dispatcher.wake
        dispatcher.start()
        return dispatcher

    def start_inbound(self) -> InboundConsumer:
        """Consume the node's inbound queue (batches platforms send in their own format)."""
        self._declare_topology()
        tiers = self.tiers
        grouped = (lambda held: tiers.accept([Message(content_type, body, deliveries)
                                              for content_type, body, deliveries in held])) if tiers.peers else None
        self.inbound = InboundConsumer(self.config.rabbitmq.addresses, self.config.node.id, inbound_handler(self.ingest),
                                       handle_group=grouped)
        self.inbound.start()
        return self.inbound

    def start_fanout(self) -> CatalogFanoutPublisher:
        """Publish published/retired catalog events to exnode.<node>.catalog (``exnode serve``, when
        feed.publish); woken by this process's catalog commits, polling for other replicas'."""
        if self.fanout is not None:  # a restart: the old thread and its wake-up go
            self.fanout.stop()
            self.feed.signal.close_thread_waiter(self.fanout.wake)
        self.fanout = CatalogFanoutPublisher(self.config.rabbitmq.addresses, self.config.node.id,
                                             FeedFanoutSource(self.feed, self.catalog.clock),
                                             wake=self.feed.signal.thread_waiter(), poll_s=self.config.feed.poll_s)
        self.fanout.start()
        return self.fanout

    @property
    def encryption(self) -> ConsumerPrivateKey:
        """The node's encryption key: what other nodes and platforms seal their requests and answers to."""
        return node_key(self.keys)

    def start_rpc(self, status_of: Callable[[Exception], str | None], timeout_s: float = 10.0) -> None:
        """Answer other nodes' requests on exnode.<node>.rpc, and ask other nodes (reply queue
        exnode.<node>.rpc-reply) about resources they hold. ``status_of`` names a refusal's gRPC status
        (node/grpc/errors.py; wired by the entry point, which knows the gRPC layer)."""
        url, node_id, clock = self.config.rabbitmq.url, self.config.node.id, self.catalog.clock
        answerer = RemoteAnswerer(self.uow, self.query, node_id, self.keys.active, self.peers, clock,
                                  self.audit_writer, status_of, Transient)
        answerer.timestamps = self.timestamps  # the verdicts it signs for other nodes' callers are stamped here
        sealing = Sealing(node_id, self.encryption, load_peer_keys(
            load_peer_documents(self.config.path(self.config.exchange.peers_dir))))
        answerer.sealing = sealing
        self.rpc_responder = RpcResponder(url, node_id, answerer.handle)
        checks = self.checks
        checks.sealing = sealing

        def on_reply(correlation: str, body: bytes) -> None:
            if correlation.startswith(CORRELATION_PREFIX):
                checks.receive(correlation, body)

        def on_return(correlation: str, reason: str) -> None:
            if correlation.startswith(CORRELATION_PREFIX):
                checks.undeliverable(correlation, reason)

        self.rpc_client = RpcClient(url, node_id, on_reply=on_reply, on_return=on_return)
        client = self.rpc_client

        def sealed_call(hop: str, body: bytes, timeout: float) -> bytes:
            """A request sealed to ``hop``, its answer opened (sealed to this node): UNAVAILABLE otherwise."""
            try:
                reply = client.call(hop, sealing.to_peer(hop, body), timeout, abandoned=CALLER_LEFT.get())
                return sealing.open(reply)
            except NotSealed as error:
                raise ConnectionError(f"node {hop}: {error}") from None

        answerer.forward = sealed_call  # requests for a node further down are relayed through here
        checks.publish = self.rpc_client.send
        self.rpc_responder.start()
        self.rpc_client.start()
        self.query.remote = RemoteQueries(node_id, self.keys.active, self.peers, sealed_call, clock,
                                          timeout_s, sealing=sealing)

    def start_uplink(self) -> CatalogUplink | None:
        """Send the catalog's published and retired entries to every upper-node platform (tiers)."""
        upward = self.tiers.upward
        if not upward:
            return None
        self.uplink = CatalogUplink(self.config.rabbitmq.addresses, self.config.node.id,
                                    [(p.name, p.queue) for p in upward], self.tiers.catalog_upward,
                                    self.tiers.advance)
        self.uplink.start()
        return self.uplink

    def _declare_topology(self) -> None:
        """Declare the node's dead-letter exchange and queue and its inbound queue once, before the
        dispatcher and the inbound consumer start: RabbitMQ may refuse two connections declaring the same
        new quorum queue at the same moment. A broker that is down now is retried by those threads."""
        try:
            declare_queue(self.config.rabbitmq.addresses, self.config.node.id, rabbit_names(self.config.node.id)["in"])
        except Exception as error:
            log.warning("cannot declare the broker topology yet: %s", error)

    def workers(self) -> dict[str, Worker]:
        """The background workers this node runs, by the name ``exnode_worker_up`` gives them."""
        running: dict[str, Worker | None] = {
            "audit_writer": self.audit_writer, "dispatcher": self.dispatcher, "inbound": self.inbound,
            "catalog_fanout": self.fanout, "catalog_uplink": self.uplink, "rpc": self.rpc_responder,
            "rpc_client": self.rpc_client}
        return {name: worker for name, worker in running.items() if worker is not None}

    def close(self) -> None:
        if self.timestamps is not None:
            self.timestamps.stop()
        for worker in (self.rpc_client, self.rpc_responder):
            if worker is not None:
                worker.stop()
        if self.uplink is not None:
            self.uplink.stop()
        if self.inbound is not None:
            self.inbound.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.fanout is not None:
            self.fanout.stop()
            self.feed.signal.close_thread_waiter(self.fanout.wake)
        self.audit_writer.stop()
        self.engine.dispose()


def build_verifier(config: Config) -> TokenVerifier:
    """The trusted issuers of the config; a key file that cannot be read is a config error naming it."""
    auth = config.auth
    keys: dict = {}
    try:
        if auth.jwks_file:
            keys.update(load_jwks(config.path(auth.jwks_file)))
        for name in auth.pem_keys:
            keys[Path(name).stem] = load_pem_public_key(config.path(name))
    except ValueError as error:
        raise ConfigError(f"auth: {error}") from None
    if auth.issuers and not keys:
        raise ConfigError("auth.issuers is set but no key: set auth.jwks_file or auth.pem_keys")
    issuers = [TrustedIssuer(name, keys) for name in auth.issuers]
    if auth.trust_dev_issuer:
        try:
            issuers.append(dev_issuer(config.keys_dir, config.node.id))
        except ValueError as error:
            raise ConfigError(f"auth.trust_dev_issuer: {error}") from None
    try:
        return TokenVerifier(issuers, config.audience, tuple(auth.algorithms), auth.leeway_s)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def load_node_platforms(config: Config) -> list[Platform]:
    path = config.path(config.exchange.platforms_file)
    if not config.exchange.platforms_file or not path.exists():
        return []
    try:
        return load_platforms(path, config.node.id)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _warn_missing_year(year: int) -> None:
    log.warning("the holiday calendar has no %d: deadlines in %d count Saturdays and Sundays only as rest days; "
                "add the State Council's notice as holidays/%d.toml in the data directory", year, year, year,
                extra={"calendar_year_missing": year})


def build_deadlines(config: Config, clock: Clock) -> Deadlines:
    """The working-day calendar (shipped years and the operator's files) and the [lists] time limits. The
    current year is looked up at once, so a node without it warns at start (once) and its metric says so."""
    try:
        calendar = load_calendar(config.data_dir, _warn_missing_year)
    except HolidayFileError as error:
        raise ConfigError(str(error)) from None
    calendar.is_working_day(beijing_date(clock()))
    section = config.lists
    return Deadlines(calendar, compliance_review=section.compliance_review, compliance_days=section.compliance_days,
                     answer_days=section.answer_days, unpublished_answer_days=section.unpublished_answer_days,
                     submitted_days=section.submitted_days, objection_days=section.objection_days)


def audit_settings(config: Config) -> AuditSettings:
    return AuditSettings(node_id=config.node.id, checkpoint_every=config.audit.checkpoint_every,
                         checkpoint_interval_s=config.audit.checkpoint_interval_s,
                         retention_days=config.audit.retention_days, timestamps=bool(config.tsa.url),
                         batch_window_s=config.audit.batch_window_ms / 1000)


def build(config: Config, *, clock: Clock = utc_now, apply_migrations: bool = True, start_audit: bool = True) -> Node:
    """The one object graph: ``exnode serve``, the CLI's local commands, the benchmarks and the tests build
    the node here (the dispatcher process builds its part with ``node.pipeline.outbox.build_dispatcher``)."""
    if apply_migrations:
        migrate(config.database_url)
    engine = make_engine(config.database_url)
    keys = KeyStore.load(config.keys_dir)
    uow = SqlUnitOfWorkFactory(engine, Sealer(keys))
    policy = Policy(node_department=config.node.department_code)
    lists = ListsApplication(uow, clock, policy, build_deadlines(config, clock))
    policy.grants = lists  # subscriptions and pulls are decided against the live grants
    settings = audit_settings(config)
    writer = AuditWriter(uow, keys.active, settings, clock)
    if start_audit:
        writer.start()
    platforms = load_node_platforms(config)
    try:
        peers = load_peers(config.path(config.exchange.peers_dir))
    except PeerConfigError as error:
        raise ConfigError(str(error)) from None
    hasher = key_hasher(keys)
    timestamps = None
    if config.tsa.url:
        try:
            roots = load_roots(config.path(config.tsa.roots_file))
        except TimestampInvalid as error:
            raise ConfigError(f"tsa.roots_file: {error}") from None
        timestamps = Timestamps(uow, clock, config.tsa, roots)
    ingest = MeteredIngest(uow, clock, policy, keys.active, config.node.id, platforms, writer,
                           Limits(max_records=config.exchange.max_batch_records,
                                  max_outbox_rows=config.exchange.max_outbox_rows), timestamps=timestamps,
                           key_hasher=hasher)
    exchange = MeteredExchange(uow, clock, policy, config.node.id, platforms,
                               declare_queue=functools.partial(declare_queue, config.rabbitmq.addresses, config.node.id))
    tiers = TierApplication(ingest, peers, platforms, lists)
    lists.tiers = tiers  # 回流: demands for an upper node's resource are forwarded there and decided by it
    feed = CatalogFeed(uow, policy, keys.mac_keys(), config.node.id, poll_s=config.feed.poll_s,
                       leeway_s=config.auth.leeway_s)
    query = MeteredQuery(uow, clock, policy, lists, hasher, keys.active, config.node.id)
    query.stamp_verdicts = bool(config.tsa.url)
    query.reads_in_process = engine.dialect.name == "sqlite"
    query.quota.writer = writer  # verification counts share the audit trail's group commits
    return Node(
        config=config, engine=engine, keys=keys, verifier=build_verifier(config), policy=policy,
        catalog=CatalogApplication(uow, clock, policy, changed=feed.signal.notify, macs=keys.mac_keys()), feed=feed, lists=lists,
        disputes=DisputesApplication(lists), objections=ObjectionsApplication(lists, relay=ingest, tiers=tiers),
        report=ReportApplication(lists, keys.active, config.node.id, config.node.department_code,
                                 upward=[p.queue for p in platforms if p.kind == "node" and p.upper_node],
                                 publish=functools.partial(publish_confirmed, config.rabbitmq.addresses, config.node.id)),
        uow=uow, ingest=ingest, exchange=exchange, audit=AuditApplication(uow, keys.public, settings, clock),
        audit_writer=writer,
        pull=PullApplication(uow, clock, keys.active, config.node.id, policy, writer, PullSettings(
            batch_records=config.exchange.pull_batch_records, window=config.exchange.pull_window,
            ack_timeout_s=config.exchange.pull_ack_timeout_s, stamp_days=bool(config.tsa.url))),
        tiers=tiers, timestamps=timestamps,
        query=query, peers=peers,
        checks=CheckApplication(uow, clock, policy, keys.active, config.node.id, peers))


def key_hasher(keys: KeyStore) -> KeyHasher:
    """The current-record index's HMAC, keyed by a secret derived from the node's first key: the first
    key stays in the keyring through rotations, so the index's hashes stay valid."""
    first = next(iter(keys.public))
    return KeyHasher(keys.mac_key(INDEX_PURPOSE, first))


def purge_checks(node: Node, now: dt.datetime) -> tuple[int, int]:
    """The retention of household checks and of the answers given to other nodes (``checks.retention_days``),
    in bounded transactions: (checks deleted, answers deleted)."""
    before = now - dt.timedelta(days=node.config.checks.retention_days)
    def drain(step: Callable[[UnitOfWork], int]) -> int:
        total = 0
        while True:
            with node.uow(write=True) as uow:
                deleted = step(uow)
                uow.commit()
            total += deleted
            if not deleted:
                return total

    return (drain(lambda uow: uow.checks.purge(before)),
            drain(lambda uow: uow.verifications.purge_answers(before)))


def run_housekeeping(node: Node) -> dict[str, object]:
    """The node's daily jobs, each change audited as the node's own act: audit retention (the purge
    itself is recorded, with the anchor the remaining chain hangs from) and expiry of demands nobody
    decided before their review deadline."""
    system = Principal.system(node.config.node.id)
    records = []
    purge = node.audit.purge()
    now = node.catalog.clock()
    if purge.deleted:
        records.append(system_record(system, now, "housekeeping/audit-retention", "audit",
                                      f"purged {purge.deleted} entries older than {node.config.audit.retention_days} "
                                      f"days; chain anchored at checkpoint {purge.anchor_sequence}"))
    checks_purged, answers_purged = purge_checks(node, now)
    if checks_purged or answers_purged:
        records.append(system_record(system, now, "housekeeping/checks-retention", "checks",
                                      f"deleted {checks_purged} household checks and {answers_purged} answers given to "
                                      f"other nodes older than {node.config.checks.retention_days} days"))
    expired = node.lists.expire_overdue()
    records.extend(system_record(system, now, "housekeeping/expire-demand", f"demand:{d.id}",
                                  f"EXPIRED: {d.reason}") for d in expired)
    escalated = node.lists.escalate_overdue()
    records.extend(system_record(system, now, "housekeeping/escalate-demand", f"demand:{d.id}",
                                  f"{d.escalated_stage} past its deadline {_beijing(d.review_deadline)}: escalated to "
                                  "the coordinator") for d in escalated)
    disputes = node.disputes.escalate_overdue()
    records.extend(system_record(system, now, "housekeeping/escalate-dispute", f"dispute:{d.id}",
                                  f"the provider did not answer by {_beijing(d.provider_deadline)}: to the "
                                  "coordinator") for d in disputes)
    objections = node.objections.escalate_overdue()
    records.extend(system_record(system, now, "housekeeping/escalate-objection", f"objection:{o.id}",
                                  f"record {o.record} not checked by {_beijing(o.deadline)}: to the coordinator")
                   for o in objections)
    due = node.lists.falling_due(system)
    records.extend(system_record(system, now, "housekeeping/remind-demand", f"demand:{d.id}",
                                  f"{d.state.value} falls due {_beijing(d.review_deadline)}")
                   for d in due)
    if records:
        node.audit_writer.append(records)
    return {"purged": purge.deleted, "anchor": purge.anchor_sequence, "checks_purged": checks_purged,
            "answers_purged": answers_purged, "expired": [d.id for d in expired],
            "escalated": [d.id for d in escalated], "due_tomorrow": [d.id for d in due],
            "disputes_escalated": [d.id for d in disputes], "objections_escalated": [o.id for o in objections]}


def _beijing(at: dt.datetime) -> str:
    return f"{at.astimezone(BEIJING):%Y-%m-%d %H:%M} 北京时间"


def system_record(system: Principal, now: object, action: str, target: str, detail: str) -> AuditRecord:
    return AuditRecord(at=now, request_id=uuid.uuid4().hex, subject=system.subject, department_code="",  # type: ignore[arg-type]
                       roles=tuple(system.roles), action=action, target=target, result="OK", detail=detail)


SAMPLE = Path(__file__).resolve().parent / "sample" / "catalog.json"
"""The sample civil-affairs catalog (``exnode init --sample``)."""


def load_sample(node: Node) -> int:
    """Import and publish the sample catalog unless the catalog already has resources; the node itself
    does it, and says so in the audit trail."""
    catalog = node.catalog
    if sum(catalog.counts().values()):
        return 0
    entries = read_catalog_file(SAMPLE.read_bytes())
    system = Principal.system(node.config.node.id)
    result = catalog.import_resources(system, [e.parsed for e in entries], publish=True)
    node.audit_writer.append([AuditRecord(
        at=catalog.clock(), request_id="init-sample", subject=system.subject, department_code="",
        roles=tuple(system.roles), action="exnode init --sample", target="catalog:import", result="OK",
        detail=f"sample catalog: {result.created} resources created and published")])
    return result.created
