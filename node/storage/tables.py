"""SQLAlchemy Core tables. Alembic migrations in ``migrations/`` create them; this module is the
reference the repositories query and the migration tests compare against."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import false

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every database (SQLite keeps no zone, so it is normalised here)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


resources = Table(
    "resources",
    metadata,
    Column("code", String(40), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("provider_code", String(18), nullable=False, index=True),
    Column("latest_version", Integer, nullable=False),
    Column("published_version", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("retired_at", UTCDateTime, nullable=True),
    Column("origin_node", String(64), nullable=False, server_default=""),
    Column("via_node", String(64), nullable=False, server_default=""),
)
"""``origin_node`` empty: the node's own resource; else a read-only entry a lower tier published (tiers).
``via_node``: the lower node the entry came from (the next hop of a request to ``origin_node``; empty:
``origin_node`` itself)."""

resource_versions = Table(
    "resource_versions",
    metadata,
    Column("code", String(40), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("classification", String(16), nullable=False),
    Column("provider_code", String(18), nullable=False),
    Column("provider_name", String(200), nullable=False),
    Column("share_type", String(16), nullable=False),
    Column("open_type", String(16), nullable=False),
    Column("update_cycle", String(16), nullable=False),
    Column("search_text", Text, nullable=False),
    Column("document", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("published_at", UTCDateTime, nullable=True),
    Column("search_id", BigInteger().with_variant(Integer, "sqlite"), nullable=True),
    Column("search_terms", ARRAY(Text).with_variant(Text, "sqlite"), nullable=True),
    ForeignKeyConstraint(["code"], ["resources.code"]),
)
"""The text index (node/storage/search_index.py) is per database: on SQLite ``search_id`` is the row's
rowid in the contentless FTS5 table ``resource_search`` (migration 0011 creates it; it is no Table here
because SQLAlchemy has no virtual tables; migration 0035 gives it a column per field and adds the one-row
``resource_search_generation``, the count cache's key) and ``search_terms`` stays NULL; on PostgreSQL the
index is the ``catalog_search`` table (``search_terms`` held the terms until migration 0038 and is no longer
written or read) and ``search_id`` stays NULL."""

catalog_events = Table(
    "catalog_events",
    metadata,
    Column("sequence", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("code", String(40), nullable=False),
    Column("version", Integer, nullable=False),
    Column("provider_code", String(18), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("classification", String(16), nullable=False, server_default=""),
)
"""The catalog feed (WatchCatalog and the fanout exchange): one row per change, written in the change's
transaction. ``sequence`` is the feed position; see CatalogRepository.append_events for why positions
become visible in increasing order on PostgreSQL too."""

catalog_feed_cursors = Table(
    "catalog_feed_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
"""How far a feed consumer inside the node (the RabbitMQ fanout publisher) has got, confirmed."""

catalog_search = Table(
    "catalog_search",
    metadata,
    Column("code", String(40), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("latest", Boolean, nullable=False),
    Column("public", Boolean, nullable=False),
    Column("provider_code", String(18), nullable=False),
    Column("classification", String(16), nullable=False),
    Column("share_type", String(16), nullable=False),
    Column("open_type", String(16), nullable=False),
    Column("update_cycle", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("search_text", Text, nullable=False),
    Column("terms", ARRAY(Text).with_variant(Text, "sqlite"), nullable=False),
    Column("name_length", Integer, nullable=False, server_default="0"),
    Column("summary_length", Integer, nullable=False, server_default="0"),
    Column("name_terms", ARRAY(Text).with_variant(Text, "sqlite"), nullable=False, server_default="{}"),
    Column("lead_terms", ARRAY(Text).with_variant(Text, "sqlite"), nullable=False, server_default="{}"),
)
"""PostgreSQL only (migration 0038; SQLite's index is FTS5): one narrow row per version with what a search
reads of it (visibility, filter values, the text for the ``LIKE`` check, its terms under a GIN index),
written in the transaction of every catalog change. Why not the columns of ``resource_versions``: their
rows carry the document and are ~1.8 KB (4 to a page, 180 MB at 10^5, more than shared_buffers), so a
search read one page from the kernel per match (5,825 pages for 6,902 matches); these are ~400 bytes with
the terms array moved out of line (search_index.OUT_OF_LINE: the GIN index alone reads it), so a
search's rows stay in shared buffers and a walk in code order passes ~20 rows a page. Migration 0040 added
where the name and the summary end in ``search_text`` and their terms (the name's; the name's and the
summary's) under GIN indexes of their own: relevance ranks are answered from these rows alone."""

Index("ix_resource_versions_filters", resource_versions.c.classification, resource_versions.c.share_type)
Index("ux_resource_versions_search_id", resource_versions.c.search_id, resource_versions.c.code,
      resource_versions.c.version, unique=True)
Index("ix_catalog_search_terms", catalog_search.c.terms, postgresql_using="gin")
Index("ix_catalog_search_provider_code", catalog_search.c.provider_code, catalog_search.c.code)
Index("ix_catalog_search_name_terms", catalog_search.c.name_terms, postgresql_using="gin")
Index("ix_catalog_search_lead_terms", catalog_search.c.lead_terms, postgresql_using="gin")
Index("ix_resource_versions_open_type", resource_versions.c.open_type)
Index("ix_resource_versions_update_cycle", resource_versions.c.update_cycle)
Index("ix_resource_versions_share_type", resource_versions.c.share_type)
Index("ix_resources_status", resources.c.status, resources.c.code)
Index("ix_resources_provider_code_code", resources.c.provider_code, resources.c.code)
"""A provider's resources in code order: a page of them is the index's next rows (migration 0023)."""

_BIGINT = BigInteger().with_variant(Integer, "sqlite")

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("sequence", _BIGINT, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime, nullable=False, index=True),
    Column("request_id", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("department_code", String(18), nullable=False),
    Column("roles", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target", String(200), nullable=False),
    Column("result", String(32), nullable=False),
    Column("peer", String(100), nullable=False),
    Column("detail", Text, nullable=False),
    Column("previous_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),
)
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("sequence", _BIGINT, primary_key=True, autoincrement=False),
    Column("node_id", String(100), nullable=False),
    Column("entry_hash", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kid", String(64), nullable=False),
    Column("algorithm", String(32), nullable=False),
    Column("signature", Text, nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_sequence", _BIGINT, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("last_checkpoint_sequence", _BIGINT, nullable=False),
    Column("last_checkpoint_at", UTCDateTime, nullable=True),
)
"""One row (id 1): the chain head. Writers lock it, so replicas on one database append in turn."""

audit_verifications = Table(
    "audit_verifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("subject", String(200), nullable=False),
    Column("department_code", String(18), nullable=False),
    Column("via", String(16), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("entries_checked", BigInteger, nullable=False),
    Column("checkpoints_checked", BigInteger, nullable=False),
    Column("first_sequence", BigInteger, nullable=False),
    Column("last_sequence", BigInteger, nullable=False),
    Column("first_broken_sequence", BigInteger, nullable=False),
    Column("unsigned_tail", BigInteger, nullable=False),
    Column("problem", Text, nullable=False),
)
"""Each verification of the whole chain (``via``: console, rpc, daily) and who asked for it, so the officer's
chain status shows the same last verification on every replica (migration 0033)."""

obligations = Table(
    "obligations",
    metadata,
    Column("department_code", String(18), primary_key=True),
    Column("resource_code", String(40), primary_key=True),
    Column("resource_name", String(200), nullable=False),
    Column("update_cycle", String(16), nullable=False),
    Column("grace_days", Integer, nullable=True),
    Column("contact", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
)
"""Explicit responsibility-list entries; the rest of the list is derived from the published catalog."""

demands = Table(
    "demands",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("requester_code", String(18), nullable=False, index=True),
    Column("provider_code", String(18), nullable=False, index=True),
    Column("resource_code", String(40), nullable=False),
    Column("resource_name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("items", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("legal_basis", Text, nullable=False),
    Column("frequency", String(16), nullable=False),
    Column("contact", String(200), nullable=False),
    Column("state", String(24), nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("decided_by", String(200), nullable=False),
    Column("grant_id", String(40), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("review_deadline", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    Column("compliance_deadline", UTCDateTime, nullable=True),
    Column("compliance_at", UTCDateTime, nullable=True),
    Column("compliance_by", String(200), nullable=False, server_default=""),
    Column("answer_deadline", UTCDateTime, nullable=True),
    Column("answered_at", UTCDateTime, nullable=True),
    Column("escalated_at", UTCDateTime, nullable=True),
    Column("escalated_stage", String(20), nullable=False, server_default=""),
    Column("kind", String(8), nullable=False, server_default="COPY"),
    Column("daily_quota", Integer, nullable=False, server_default="0"),
)
"""review_deadline is the deadline of the stage the demand is in (working days, migration 0013); the
compliance review's and the provider's answer's deadlines and times are kept for timeliness statistics."""

Index("ix_demands_state_deadline", demands.c.state, demands.c.review_deadline)

disputes = Table(
    "disputes",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("demand_id", String(40), nullable=False, unique=True),
    Column("requester_code", String(18), nullable=False),
    Column("provider_code", String(18), nullable=False),
    Column("resource_code", String(40), nullable=False),
    Column("duty_basis", Text, nullable=False),
    Column("state", String(24), nullable=False),
    Column("filed_by", String(200), nullable=False),
    Column("provider_deadline", UTCDateTime, nullable=False),
    Column("provider_answer", Text, nullable=False),
    Column("provider_by", String(200), nullable=False),
    Column("provider_at", UTCDateTime, nullable=True),
    Column("decision_reason", Text, nullable=False),
    Column("conditions", Text, nullable=False),
    Column("decided_by", String(200), nullable=False),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("escalated_at", UTCDateTime, nullable=True),
    Column("grant_id", String(40), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False),
)
"""争议协调: one per contested demand (migration 0014)."""

Index("ix_disputes_state_deadline", disputes.c.state, disputes.c.provider_deadline)

objections = Table(
    "objections",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("provider_code", String(18), nullable=False),
    Column("resource_code", String(40), nullable=False),
    Column("record_id", String(64), nullable=False),
    Column("item", String(100), nullable=False),
    Column("raiser_code", String(18), nullable=False),
    Column("raised_by", String(200), nullable=False),
    Column("evidence", Text, nullable=False),
    Column("attachments", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("deadline", UTCDateTime, nullable=False),
    Column("answer", Text, nullable=False),
    Column("answered_by", String(200), nullable=False),
    Column("answered_at", UTCDateTime, nullable=True),
    Column("corrected_by", String(64), nullable=False),
    Column("escalated_at", UTCDateTime, nullable=True),
    Column("version", Integer, nullable=False),
)
"""校核纠错 (migration 0015): a record with an OPEN objection is served marked disputed."""

Index("ix_objections_record", objections.c.provider_code, objections.c.resource_code, objections.c.record_id,
      objections.c.state)
Index("ix_objections_state_deadline", objections.c.state, objections.c.deadline)

tier_reports = Table(
    "tier_reports",
    metadata,
    Column("sender_node", String(128), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("xml", Text, nullable=False),
    Column("generated", String(40), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)
"""统计月报 a lower node sent upward (migration 0015): its latest report of each month, the region's
aggregate reads them."""

grants = Table(
    "grants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("consumer_code", String(18), nullable=False, index=True),
    Column("provider_code", String(18), nullable=False, index=True),
    Column("resource_code", String(40), nullable=False, index=True),
    Column("items", Text, nullable=False),
    Column("masking", Text, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("demand_id", String(40), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_reason", Text, nullable=False),
    Column("clear_delivery", Boolean, nullable=False, server_default=false()),
    Column("kind", String(8), nullable=False, server_default="COPY"),
    Column("daily_quota", Integer, nullable=False, server_default="0"),
    Column("purpose", Text, nullable=False, server_default=""),
    Column("legal_basis", Text, nullable=False, server_default=""),
)
"""``kind`` COPY: relay, pull and keyed queries; VERIFY: claim verification only, ``daily_quota`` a day."""

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", _BIGINT, primary_key=True, autoincrement=True),
    Column("provider_code", String(18), nullable=False),
    Column("resource_code", String(40), nullable=False),
    Column("consumer_code", String(18), nullable=False),
    Column("delivered_at", UTCDateTime, nullable=False),
    Column("batch_id", String(64), nullable=False),
    Column("records", Integer, nullable=False),
)
"""Deliveries: records received from a provider (consumer_code empty) or delivered to a consumer.
The exchange pipeline writes them; the responsibility list's compliance and 销账 read them."""

for _column in ("subject", "department_code", "action", "target", "result"):
    # The audit query's filters, newest first (migration 0012).
    Index(f"ix_audit_entries_{_column}_sequence", audit_entries.c[_column], audit_entries.c.sequence)

Index("ix_deliveries_provider_resource", deliveries.c.provider_code, deliveries.c.resource_code,
      deliveries.c.delivered_at)

provider_keys = Table(
    "provider_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("department_code", String(18), nullable=False, index=True),
    Column("algorithm", String(32), nullable=False),
    Column("public_pem", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)
"""Providers' public keys: a batch's signature must verify with a live key of its provider department."""

consumer_keys = Table(
    "consumer_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("department_code", String(18), nullable=False, index=True),
    Column("algorithm", String(32), nullable=False),
    Column("public_pem", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)
"""Consumers' encryption public keys: the newest live one of a department seals every message relayed to it
(``security.sealing``)."""

batches = Table(
    "batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("provider_code", String(18), nullable=False),
    Column("resource_code", String(40), nullable=False),
    Column("record_count", Integer, nullable=False),
    Column("merkle_root", String(64), nullable=False),
    Column("kid", String(64), nullable=False),
    Column("signature", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("gaps", Text, nullable=False),
)

records = Table(
    "records",
    metadata,
    Column("provider_code", String(18), primary_key=True),
    Column("resource_code", String(40), primary_key=True),
    Column("record_id", String(64), primary_key=True),
    Column("sequence", _BIGINT, nullable=False),
    Column("operation", String(8), nullable=False),
    Column("payload", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("batch_id", String(64), nullable=False, index=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("position", _BIGINT, nullable=True),
    Column("payload_key", String(32), nullable=True),
)
"""``payload``: the record's canonical JSON sealed under the data key ``payload_key`` (base64 of nonce,
ciphertext and tag; ``node.storage.secrecy``); a row without a key id was written before encryption at rest."""
Index("ix_records_sequence", records.c.provider_code, records.c.resource_code, records.c.sequence)
Index("ux_records_position", records.c.position, unique=True)
"""``position``: the stored-records order the nightly pull's cursors refer to. Ingest leaves it empty; the
pull's sequencer numbers committed records under one lock, so positions become visible as a prefix."""
Index("ix_records_unpositioned", records.c.received_at, records.c.batch_id, records.c.sequence, records.c.record_id,
      postgresql_where=records.c.position.is_(None), sqlite_where=records.c.position.is_(None))
"""The records the sequencer has still to number, in the order it numbers them: it reads them in bounded
chunks through this index, so its work follows the new records, not the table (nor its statistics)."""

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("consumer_code", String(18), primary_key=True),
    Column("resource_code", String(40), primary_key=True),
    Column("platform", String(64), primary_key=True),
    Column("grant_id", String(40), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", _BIGINT, primary_key=True, autoincrement=True),
    Column("batch_id", String(64), nullable=False, index=True),
    Column("platform", String(64), nullable=False),
    Column("queue", String(200), nullable=False),
    Column("consumer_code", String(18), nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("headers", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("claimed_by", String(128), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("body_key", String(32), nullable=True),
)
"""One row per (batch, subscriber), written in the ingest transaction; the dispatcher drains it. A
dispatcher claims rows for ``claimed_until`` before it publishes them (replicas of one node share the
outbox); a claim that runs out (its replica died) lets another take the rows."""
Index("ix_outbox_pending", outbox.c.state, outbox.c.next_attempt_at)

receipts = Table(
    "receipts",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("receiver_code", String(18), primary_key=True),
    Column("record_count", Integer, nullable=False),
    Column("kid", String(64), nullable=False),
    Column("signature", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)
"""Signed receipts: a receiver's non-repudiable statement that it got these records of a batch."""

pull_acks = Table(
    "pull_acks",
    metadata,
    Column("platform", String(160), primary_key=True),
    Column("position", _BIGINT, nullable=False),
    Column("acked_at", UTCDateTime, nullable=False),
)
"""Per platform, the position up to which it acknowledged pulled batches: a broken-off pull resumes there."""

pull_secrets = Table(
    "pull_secrets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("secret", LargeBinary, nullable=False),
)
"""The node's cursor MAC secret: in the database so that replicas and a restored backup honour the same
cursors."""

day_manifests = Table(
    "day_manifests",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("document", Text, nullable=False),
    Column("kid", String(64), nullable=False),
    Column("signature", Text, nullable=False),
    Column("closed_at", UTCDateTime, nullable=False),
)
"""One signed manifest per closed (Beijing) day: ``exnode batch nightly``; ``document`` is canonical JSON."""

data_keys = Table(
    "data_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("scope", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column("algorithm", String(16), nullable=False),
    Column("kek_id", String(32), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("retired_at", UTCDateTime, nullable=True),
)
"""Envelope encryption: one data key per scope (a resource, or ``index`` for keyed hashes) and month,
kept wrapped by the node's key-encryption key ``kek_id`` (in the node's key files, never here). A retired
key still opens what it sealed until the re-encryption job has moved its rows to a live key."""
Index("ix_data_keys_scope", data_keys.c.scope, data_keys.c.period)

tsa_pending = Table(
    "tsa_pending",
    metadata,
    Column("id", _BIGINT, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("ref", String(128), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("timestamp_id", _BIGINT, nullable=True),
    Column("leaf", Integer, nullable=True),
)
"""Roots waiting for (or covered by) a trusted timestamp: a batch's Merkle root (kind ``batch``, ref its
id); ``timestamp_id`` and ``leaf`` say which token covers it and where in its root of roots."""
Index("ix_tsa_pending_timestamp_id", tsa_pending.c.timestamp_id, tsa_pending.c.created_at)

tsa_tokens = Table(
    "tsa_tokens",
    metadata,
    Column("id", _BIGINT, primary_key=True, autoincrement=True),
    Column("root", String(64), nullable=False),
    Column("roots", Integer, nullable=False),
    Column("reply", LargeBinary, nullable=False),
    Column("gen_time", UTCDateTime, nullable=False),
    Column("stamped_at", UTCDateTime, nullable=False),
)
"""RFC 3161 replies, each over the Merkle root of the roots it covers (``tsa_pending``, in leaf order)."""

relayed_records = Table(
    "relayed_records",
    metadata,
    Column("provider_code", String(18), primary_key=True),
    Column("resource_code", String(40), primary_key=True),
    Column("record_id", String(64), primary_key=True),
    Column("sender_node", String(128), nullable=False),
    Column("sender_batch_id", String(128), nullable=False),
    Column("hops", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)
"""Records a lower-tier node relayed here: every node's signature over the record (``hops``, JSON, oldest
first, the sender's last), so the chain can be verified here and passed on upward."""

tier_cursors = Table(
    "tier_cursors",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("position", _BIGINT, nullable=False),
)
"""How far the catalog uplink got in the catalog event log, per upper-node platform."""

forwarded_demands = Table(
    "forwarded_demands",
    metadata,
    Column("demand_id", String(40), primary_key=True),
    Column("peer_node", String(128), nullable=False),
    Column("peer_demand_id", String(40), nullable=False),
    Column("side", String(10), nullable=False),
    Column("platform", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("peer_node", "peer_demand_id", "side", name="uq_forwarded_demands_peer"),
)
"""回流 (migration 0027): demands that crossed a tier link. ``side`` REQUESTER: this node's demand, forwarded
to its upper node ``peer_node`` through ``platform``, which decides it; PROVIDER: the demand filed here for
lower node ``peer_node`` (its demand ``peer_demand_id``), whose answer goes down through ``platform``."""

tier_disputes = Table(
    "tier_disputes",
    metadata,
    Column("provider_code", String(18), primary_key=True),
    Column("resource_code", String(40), primary_key=True),
    Column("record_id", String(64), primary_key=True),
    Column("objection_id", String(64), primary_key=True),
    Column("sender_node", String(128), nullable=False),
    Column("disputed", Boolean, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
)
"""校核纠错 across tiers (migration 0028): per relayed record and objection raised at a lower node, whether
the lower node's signed notice says it is open (``disputed``) or answered; a record here is served marked
while any of its rows is, or any objection raised here is open. Once answered, an objection's row stays
answered (a replayed "raised" notice changes nothing)."""
Index("ix_tier_disputes_open", tier_disputes.c.disputed)

forwarded_objections = Table(
    "forwarded_objections",
    metadata,
    Column("objection_id", String(64), primary_key=True),
    Column("peer_node", String(128), nullable=False),
    Column("peer_objection_id", String(64), nullable=False),
    Column("side", String(10), primary_key=True),
    Column("platform", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("peer_node", "peer_objection_id", "side", name="uq_forwarded_objections_peer"),
)
"""校核纠错 across tiers (migration 0034): objections that crossed a tier link. ``side`` REQUESTER: this node's
objection, forwarded down to ``peer_node`` through ``platform`` toward the record's origin, which answers it;
PROVIDER: filed here for upper node ``peer_node`` (its objection ``peer_objection_id``), whose answer goes up
through ``platform``. An intermediate node holds both rows for its copy."""

record_keys = Table(
    "record_keys",
    metadata,
    Column("resource_code", String(40), primary_key=True),
    Column("key_hash", String(64), primary_key=True),
    Column("provider_code", String(18), nullable=False),
    Column("record_id", String(64), nullable=False),
    Column("sequence", _BIGINT, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
"""The current-record index of keyed resources (catalog items marked ``key``): per (resource, keyed hash of
the key) the record that is current, written in the ingest transaction (an UPSERT replaces, a DELETE
removes). ``key_hash`` is an HMAC with a node secret (security/keyed_hash.py), never the clear key."""
Index("ix_record_keys_record", record_keys.c.provider_code, record_keys.c.resource_code, record_keys.c.record_id)

verification_usage = Table(
    "verification_usage",
    metadata,
    Column("grant_id", String(40), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("verifications", Integer, nullable=False),
    Column("mismatches", Integer, nullable=False),
)
"""Verifications per verification grant and Beijing day: the daily quota counts here (the enumeration
defence), in the transaction that answers the verification."""

cache_generations = Table(
    "cache_generations",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("generation", BigInteger, nullable=False),
)
"""One counter per kind of row the node caches in process (``grants``, ``consumer_keys``): the transaction
that changes such a row adds one to its counter, and a reader that sees a counter other than its cache's
reads the rows again. Every replica on one database reads the same counters, so a revocation anywhere is
seen by the next request everywhere."""

rpc_answers = Table(
    "rpc_answers",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("requester_node", String(128), nullable=False),
    Column("answer", LargeBinary, nullable=False),
    Column("answered_at", UTCDateTime, nullable=False, index=True),
    Column("data_key", String(32), nullable=True),
)
"""Answers to other nodes' requests (``exnode.<node>.rpc``), by request id: a redelivered request gets the
stored answer and is not processed again (at-most-once). ``answer`` is sealed under the data key
``data_key`` (scope ``rpc``; none: clear, rows from before 0021); kept for ``checks.retention_days``."""

household_checks = Table(
    "household_checks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("requester_code", String(18), nullable=False, index=True),
    Column("subject", String(200), nullable=False),
    Column("members", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("authorisation", String(64), nullable=False),
    Column("deadline", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("data_key", String(32), nullable=True),
)
"""家庭经济状况核对: one row per check; ``members`` JSON [{id_number, name}], sealed (base64) under the data
key ``data_key`` (scope ``checks``; none: clear). Deleted with its targets after ``checks.retention_days``."""

check_targets = Table(
    "check_targets",
    metadata,
    Column("check_id", String(40), primary_key=True),
    Column("target", String(64), primary_key=True),
    Column("category", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("findings", Text, nullable=False),
    Column("answered_at", UTCDateTime, nullable=True),
    Column("kid", String(64), nullable=False),
    Column("signature", Text, nullable=False),
    Column("answer", LargeBinary, nullable=True),
    Column("version", Integer, nullable=False),
    Column("data_key", String(32), nullable=True),
)
"""Per check and target: its state and the signed answer as received (kept for the report's evidence).
``findings`` (base64) and ``answer`` are sealed under ``data_key`` (scope ``checks``; none: clear)."""

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("subject", String(200), nullable=False),
    Column("department_code", String(18), nullable=False),
    Column("roles", Text, nullable=False),
    Column("issuer", String(200), nullable=False),
    Column("token_id", String(200), nullable=False),
    Column("token_expires_at", Float, nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("via", String(8), nullable=False),
    Column("created", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("expires", Float, nullable=False, index=True),
    Column("flash", Text, nullable=False),
)
"""The web console's sessions, shared by every process of the node (DESIGN §10: replicas behind one
address). ``id_hash``: SHA-256 of the cookie's random id, so reading the table does not hand out
sessions; the principal as verified at sign-in (never the token); times in Unix seconds; ``flash`` a JSON
list of messages for the next page."""
