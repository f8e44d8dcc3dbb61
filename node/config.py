"""One TOML config file (``<data>/exnode.toml``) plus ``EXNODE_<SECTION>_<KEY>`` environment overrides.

Every key has a default here; an unknown key or a value of the wrong type is an error that names the
key and the file, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

CONFIG_FILE = "exnode.toml"


class ConfigError(Exception):
    """A bad config value; the message names the key and where it came from."""


@dataclass(frozen=True)
class NodeSection:
    id: str = "node"
    name: str = "民政数据共享交换节点"
    department_code: str = ""


@dataclass(frozen=True)
class ServerSection:
    listen: str = "127.0.0.1:50051"
    metrics_listen: str = "127.0.0.1:9464"
    max_message_bytes: int = 8 * 1024 * 1024
    shutdown_grace_s: float = 5.0
    tls_cert: str = ""
    """PEM certificate chain of the gRPC port; with tls_key, the port speaks TLS."""
    tls_key: str = ""
    tls_client_ca: str = ""
    """PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)."""
    log_format: str = "json"
    """``exnode serve``'s log lines on stderr: ``json`` (one object per line) or ``text`` (for people)."""
    department_max_streams: int = 64
    """Open streams (IngestStream, Pull, WatchCatalog, exports) one department may hold at once; 0: no limit."""
    department_requests_per_s: float = 0.0
    """Requests per second one department may send to the gRPC port, and to the console (a bucket each, of
    ``department_burst``); 0: no limit."""
    department_burst: int = 200
    allow_plain_links: bool = False
    """Start although the broker or the database is reached over plain TCP on a host other than loopback
    (a node that does not trust the development issuer refuses to otherwise); said at start-up."""
    worker_stall_s: float = 60.0
    """A background worker (audit writer, dispatcher, inbound consumer, catalog publishers) whose loop has
    not turned for this long counts as stuck: liveness turns NOT_SERVING so the node is restarted."""
    gc_threshold0: int = 50_000
    """CPython's cyclic collector, as ``gc.set_threshold(gc_threshold0, gc_threshold1, gc_threshold2)``:
    allocations between young collections (CPython's default is 700). Why not the default: each relayed
    record and each catalog event sent to 1,000 watchers allocates dozens of short-lived objects, and the
    collections that followed set the relay's CPU and the watchers' p99 (``exnode bench watchers``)."""
    gc_threshold1: int = 20
    """Young collections between middle ones (CPython: 10)."""
    gc_threshold2: int = 100
    """Middle collections between full ones (CPython: 10); a full collection walks every object the node
    holds, streams included, so it runs rarely."""
    gc_freeze: bool = True
    """Move what start-up built (modules, configuration, the catalog's caches) out of the collector's sight."""


@dataclass(frozen=True)
class DatabaseSection:
    url: str = ""
    """Empty: SQLite (WAL) at ``<data>/exnode.db``. ``postgresql://…`` uses psycopg 3."""
    tls_ca: str = ""
    """PEM CA of the PostgreSQL server's certificate: the link is ``sslmode=verify-full`` (the certificate
    must name the URL's host)."""
    tls_cert: str = ""
    """A client certificate (PEM) for PostgreSQL ``cert`` authentication, with tls_key."""
    tls_key: str = ""
    reencrypt_interval_s: float = 300.0
    """How often a serving node looks for newly retired data keys and re-seals their rows under live keys."""


@dataclass(frozen=True)
class RabbitSection:
    url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    urls: tuple[str, ...] = ()
    """Further nodes of the same RabbitMQ cluster (``EXNODE_RABBITMQ_URLS``: comma-separated). Every broker
    connection of the node starts with ``url`` and moves to the next address of the list when its broker is
    lost, so the loss of one cluster node is a reconnect, not an outage."""

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every broker address, ``url`` first, without repeats."""
        return tuple(dict.fromkeys((self.url, *self.urls)))
    tls_ca: str = ""
    """PEM CA of the broker's certificate, for an ``amqps://`` URL: the certificate must name the URL's host."""
    tls_cert: str = ""
    """A client certificate (PEM) for the broker, with tls_key (RabbitMQ ``ssl_options.verify``)."""
    tls_key: str = ""


@dataclass(frozen=True)
class AuthSection:
    issuers: tuple[str, ...] = ()
    """``iss`` values of the unified identity service (统一身份认证) whose keys are in jwks_file / pem_keys."""
    jwks_file: str = ""
    pem_keys: tuple[str, ...] = ()
    """PEM public key files; a file's name without extension is its key id."""
    audience: str = ""
    """Empty: ``exnode:<node id>``."""
    algorithms: tuple[str, ...] = ("EdDSA", "ES256", "RS256")
    leeway_s: float = 30.0
    trust_dev_issuer: bool = False
    """Accept tokens from ``exnode token issue`` (the development issuer key in keys/). Never in production."""


@dataclass(frozen=True)
class AuditSection:
    checkpoint_every: int = 1000
    checkpoint_interval_s: float = 60.0
    retention_days: int = 180
    batch_window_ms: float = 5.0
    """The audit writer's group-commit window under concurrent load (``AuditSettings.batch_window_s``)."""


@dataclass(frozen=True)
class ChecksSection:
    retention_days: int = 90
    """How long household checks (members, findings, the answers as received) and the answers this node
    gave to other nodes' requests are kept; the daily housekeeping deletes older ones."""


@dataclass(frozen=True)
class ExchangeSection:
    platforms_file: str = "platforms.toml"
    """The platforms this node relays to (ops/platforms.sample.toml); absent file: none."""
    dispatch: bool = True
    """Run the outbox dispatcher with this node (replicas may leave it to one of them)."""
    dispatch_process: bool = True
    """The dispatcher runs in a process of its own (node/pipeline/dispatcher_process.py); false: a thread of the node."""
    window: int = 1000
    """Unconfirmed messages (one per record) in flight per dispatcher; whole outbox rows are published."""
    claim_lease_s: float = 60.0
    """How long a dispatcher owns the outbox rows it claimed; a replica that dies leaves its rows to the
    others after this long."""
    max_attempts: int = 8
    max_batch_records: int = 5000
    max_outbox_rows: int = 2_000_000
    """Undelivered outbox rows over which Ingest answers UNAVAILABLE (the broker has taken nothing for a long
    while) instead of filling the disk; 0: no bound."""
    pull_batch_records: int = 8192
    """Records per batch of the nightly pull (a power of two lets clients fold batch roots)."""
    pull_window: int = 4
    """Pull batches sent ahead of the client's acknowledgements."""
    pull_ack_timeout_s: float = 60.0
    """How long a pull waits for an acknowledgement before ending (the next pull resends from the last one)."""
    peers_dir: str = "peers"
    """Lower-tier nodes whose relayed records and catalog entries this node accepts: one public-keys.json of
    each (``keys/public-keys.json`` of that node), named as you like, ``*.json``. Absent: no peers."""


@dataclass(frozen=True)
class FeedSection:
    poll_s: float = 1.0
    """How often catalog watchers look for changes other processes or replicas made (this process's own
    changes wake them at once)."""
    publish: bool = True
    """Publish published/retired events to the fanout exchange exnode.<node>.catalog from this process."""


@dataclass(frozen=True)
class ListsSection:
    compliance_review: bool = False
    """Demands pass the coordinator's compliance review (合规审核) before the provider answers."""
    compliance_days: int = 2
    """Working days for the compliance review."""
    answer_days: int = 5
    """Working days for the provider's answer to a 有条件共享 demand."""
    unpublished_answer_days: int = 10
    """…when the provider has not yet delivered the resource's data to the platform."""
    submitted_days: int = 10
    """Calendar days a description-only demand waits for its requester to name a resource."""
    objection_days: int = 5
    """Working days for the provider to check a record objected to (校核纠错)."""


@dataclass(frozen=True)
class ConsoleSection:
    """The web console (网页控制台) ``exnode serve`` runs on a listener of its own."""

    enabled: bool = True
    listen: str = "127.0.0.1:8080"
    idle_timeout_s: float = 900.0
    """A session unused this long is over (等保 2.0 level 3 asks for session timeouts): 15 minutes."""
    absolute_timeout_s: float = 8 * 3600.0
    """A session ends this long after sign-in however busy it is."""
    tls: bool = False
    """The console is behind a TLS-terminating proxy: session cookies get ``Secure``."""
    oidc_authorization_endpoint: str = ""
    """The identity service's OIDC authorization endpoint: with it, 「统一身份认证登录」 runs the
    authorization-code flow (PKCE); the token it returns is verified like any bearer token (auth.*)."""
    oidc_token_endpoint: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_redirect_uri: str = ""
    """This console's callback as registered with the identity service, e.g. https://node.example/login/oidc/callback."""
    oidc_scope: str = "openid"


@dataclass(frozen=True)
class TsaSection:
    url: str = ""
    """The time-stamping authority (RFC 3161 over HTTP). Empty: no trusted timestamps."""
    roots_file: str = ""
    """PEM root certificate(s) the TSA's certificate must chain to (checked on every reply and offline)."""
    interval_s: float = 60.0
    """How often the roots waiting are stamped together (one token for up to max_roots)."""
    max_roots: int = 10_000
    timeout_s: float = 10.0
    max_unstamped_age_s: float = 4 * 3600.0
    """After a TSA outage this long (the oldest root still unstamped), ingest is refused with UNAVAILABLE
    (X-Road's default: 4 h)."""


LEGAL_MINIMUM_RETENTION_DAYS = 180
"""网络安全法 第二十一条: network logs are kept for no less than six months."""


@dataclass(frozen=True)
class Config:
    data_dir: Path
    node: NodeSection = field(default_factory=NodeSection)
    server: ServerSection = field(default_factory=ServerSection)
    database: DatabaseSection = field(default_factory=DatabaseSection)
    rabbitmq: RabbitSection = field(default_factory=RabbitSection)
    auth: AuthSection = field(default_factory=AuthSection)
    audit: AuditSection = field(default_factory=AuditSection)
    checks: ChecksSection = field(default_factory=ChecksSection)
    exchange: ExchangeSection = field(default_factory=ExchangeSection)
    feed: FeedSection = field(default_factory=FeedSection)
    lists: ListsSection = field(default_factory=ListsSection)
    console: ConsoleSection = field(default_factory=ConsoleSection)
    tsa: TsaSection = field(default_factory=TsaSection)

    @property
    def audience(self) -> str:
        return self.auth.audience or f"exnode:{self.node.id}"

    def path(self, value: str) -> Path:
        """A path from the config: relative ones are relative to the data directory."""
        return self.data_dir / value

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'exnode.db'}"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"


SECTIONS = {"node": NodeSection, "server": ServerSection, "database": DatabaseSection, "rabbitmq": RabbitSection,
            "auth": AuthSection, "audit": AuditSection, "checks": ChecksSection, "exchange": ExchangeSection,
            "feed": FeedSection,
            "lists": ListsSection, "console": ConsoleSection,

            "tsa": TsaSection}


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, tuple):
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
            return value.lower() in ("1", "true", "yes")
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        elif isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    raise ConfigError(f"{where}: expected {type(default).__name__}, got {value!r}")


def load_config(data_dir: Path, environ: dict[str, str] | None = None) -> Config:
    """Read ``<data_dir>/exnode.toml`` (if present) and apply ``EXNODE_*`` overrides."""
    environ = dict(os.environ if environ is None else environ)
    path = data_dir / CONFIG_FILE
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: not valid TOML: {error}") from None
    sections: dict[str, Any] = {}
    overridden: dict[str, str] = {}
    """``section.key`` → the environment variable its value came from."""
    for name, kind in SECTIONS.items():
        values = raw.pop(name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        defaults = kind()
        known = {f.name for f in fields(kind)}
        for key in values:
            if key not in known:
                raise ConfigError(f"{path}: unknown key {name}.{key} (known: {', '.join(sorted(known))})")
        updates = {key: _coerce(value, getattr(defaults, key), f"{path}: {name}.{key}") for key, value in values.items()}
        for key in known:
            env_name = f"EXNODE_{name.upper()}_{key.upper()}"
            if env_name in environ:
                updates[key] = _coerce(environ[env_name], getattr(defaults, key), f"environment {env_name}")
                overridden[f"{name}.{key}"] = env_name
        sections[name] = replace(defaults, **updates)
    if raw:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(raw))} (known: {', '.join(SECTIONS)})")
    config = Config(data_dir=data_dir, **sections)
    _validate(config, path, overridden)
    return _with_tls(config, path)


def _with_tls(config: Config, path: Path) -> Config:
    """The broker and database URLs with their TLS settings in them, so that every connection the node
    opens (pika's URL ``ssl_options``, libpq's ``sslmode=verify-full``) verifies the peer the same way."""
    from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

    rabbit, database = config.rabbitmq, config.database
    if rabbit.tls_ca or rabbit.tls_cert:
        parts = urlsplit(rabbit.url)
        if parts.scheme != "amqps":
            raise ConfigError(f"{path}: rabbitmq.tls_ca / tls_cert need an amqps:// rabbitmq.url, not {parts.scheme}://")
        if bool(rabbit.tls_cert) != bool(rabbit.tls_key):
            raise ConfigError(f"{path}: rabbitmq.tls_cert and rabbitmq.tls_key go together")
        options: dict[str, str] = {"server_hostname": parts.hostname or ""}
        if rabbit.tls_ca:
            options["ca_certs"] = str(config.path(rabbit.tls_ca))
        if rabbit.tls_cert:
            options["certfile"], options["keyfile"] = str(config.path(rabbit.tls_cert)), str(config.path(rabbit.tls_key))
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "ssl_options"] + [("ssl_options", repr(options))]
        rabbit = replace(rabbit, url=urlunsplit(parts._replace(query=urlencode(query, quote_via=quote))))
    if database.tls_ca or database.tls_cert:
        parts = urlsplit(database.url)
        if not parts.scheme.startswith("postgres"):
            raise ConfigError(f"{path}: database.tls_ca / tls_cert need a postgresql:// database.url")
        if bool(database.tls_cert) != bool(database.tls_key):
            raise ConfigError(f"{path}: database.tls_cert and database.tls_key go together")
        query = [(k, v) for k, v in parse_qsl(parts.query) if not k.startswith("ssl")] + [("sslmode", "verify-full")]
        if database.tls_ca:
            query.append(("sslrootcert", str(config.path(database.tls_ca))))
        if database.tls_cert:
            query += [("sslcert", str(config.path(database.tls_cert))), ("sslkey", str(config.path(database.tls_key)))]
        database = replace(database, url=urlunsplit(parts._replace(query=urlencode(query, safe="/"))))
    return replace(config, rabbitmq=rabbit, database=database)


def _validate(config: Config, path: Path, overridden: dict[str, str]) -> None:
    """Checks across keys; a message names where the offending value came from (the file or a variable)."""
    def where(*keys: str) -> str:
        variables = [overridden[key] for key in keys if key in overridden]
        return f"{path}{' and environment ' + ', '.join(variables) if variables else ''}"

    audit = config.audit
    if config.checks.retention_days < 1:
        raise ConfigError(f"{where('checks.retention_days')}: checks.retention_days = "
                          f"{config.checks.retention_days}; at least 1")
    if audit.retention_days < LEGAL_MINIMUM_RETENTION_DAYS:
        raise ConfigError(f"{where('audit.retention_days')}: audit.retention_days = {audit.retention_days} is below the legal minimum of "
                          f"{LEGAL_MINIMUM_RETENTION_DAYS} days (网络安全法 第二十一条)")
    if config.feed.poll_s <= 0:
        raise ConfigError(f"{path}: feed.poll_s must be positive")
    if config.database.reencrypt_interval_s <= 0:
        raise ConfigError(f"{where('database.reencrypt_interval_s')}: database.reencrypt_interval_s must be positive")
    if not 0 <= audit.batch_window_ms <= 100:
        raise ConfigError(f"{where('audit.batch_window_ms')}: audit.batch_window_ms = {audit.batch_window_ms}; "
                          "from 0 (commit at once) to 100")
    if audit.checkpoint_every < 1 or audit.checkpoint_interval_s <= 0:
        raise ConfigError(f"{where('audit.checkpoint_every', 'audit.checkpoint_interval_s')}: audit.checkpoint_every and audit.checkpoint_interval_s must be positive")
    exchange = config.exchange
    if exchange.max_outbox_rows < 0:
        raise ConfigError(f"{where('exchange.max_outbox_rows')}: exchange.max_outbox_rows = {exchange.max_outbox_rows} "
                          f"must be 0 (no bound) or positive")
    for name in ("window", "claim_lease_s", "max_attempts", "max_batch_records", "pull_batch_records", "pull_window",
                 "pull_ack_timeout_s"):
        if getattr(exchange, name) <= 0:
            raise ConfigError(f"{where('exchange.' + name)}: exchange.{name} = {getattr(exchange, name)} must be positive")
    for name in ("compliance_days", "answer_days", "unpublished_answer_days", "submitted_days", "objection_days"):
        value = getattr(config.lists, name)
        if not 1 <= value <= 366:
            raise ConfigError(f"{where('lists.' + name)}: lists.{name} = {value} must be 1-366 days")
    if config.tsa.url and not config.tsa.roots_file:
        raise ConfigError(f"{where('tsa.url', 'tsa.roots_file')}: tsa.url needs tsa.roots_file (the TSA's root "
                          "certificates): a token that cannot be checked proves nothing")
    server = config.server
    if server.department_max_streams < 0 or server.department_requests_per_s < 0 or server.department_burst < 1:
        raise ConfigError(f"{where('server.department_max_streams', 'server.department_requests_per_s', 'server.department_burst')}: "
                          f"server.department_max_streams and server.department_requests_per_s must be 0 (no limit) or "
                          f"positive, server.department_burst at least 1")
    if server.gc_threshold0 < 0 or server.gc_threshold1 < 1 or server.gc_threshold2 < 1:
        raise ConfigError(f"{where('server.gc_threshold0', 'server.gc_threshold1', 'server.gc_threshold2')}: "
                          "server.gc_threshold0 must be 0 (no cyclic collection) or positive, gc_threshold1 and "
                          "gc_threshold2 at least 1")
    if bool(server.tls_cert) != bool(server.tls_key):
        raise ConfigError(f"{where('server.tls_cert', 'server.tls_key')}: server.tls_cert and server.tls_key go together (one is set, the other is not)")
    if server.log_format not in ("json", "text"):
        raise ConfigError(f"{where('server.log_format')}: server.log_format = {server.log_format!r}: expected \"json\" or \"text\"")
    console = config.console
    if console.idle_timeout_s <= 0 or console.absolute_timeout_s < console.idle_timeout_s:
        raise ConfigError(f"{where('console.idle_timeout_s', 'console.absolute_timeout_s')}: console.idle_timeout_s "
                          "must be positive and at most console.absolute_timeout_s")
    oidc = (console.oidc_authorization_endpoint, console.oidc_token_endpoint, console.oidc_client_id,
            console.oidc_redirect_uri)
    if any(oidc) and not all(oidc):
        raise ConfigError(f"{path}: console.oidc_authorization_endpoint, oidc_token_endpoint, oidc_client_id and "
                          "oidc_redirect_uri go together (some are set, others not)")
    if server.tls_client_ca and not server.tls_cert:
        raise ConfigError(f"{where('server.tls_client_ca')}: server.tls_client_ca (mutual TLS) needs server.tls_cert and server.tls_key")


def default_data_dir() -> Path:
    return Path(os.environ.get("EXNODE_DATA", ".exnode"))


def render_config(node_id: str, node_name: str, department_code: str, *, dev: bool = False) -> str:
    """The commented config ``exnode init`` writes."""
    return f'''# exnode configuration. Every key can be overridden by EXNODE_<SECTION>_<KEY>,
# e.g. EXNODE_DATABASE_URL=postgresql://127.0.0.1/exnode or EXNODE_SERVER_LISTEN=0.0.0.0:50051.

[node]
id = "{node_id}"                    # used in queue names: exnode.<id>.in, exnode.<id>.out.<platform>
name = "{node_name}"
department_code = "{department_code}"   # 统一社会信用代码 of the department running this node

[server]
listen = "127.0.0.1:50051"           # gRPC
metrics_listen = "127.0.0.1:9464"    # Prometheus /metrics
max_message_bytes = 8388608          # larger requests get RESOURCE_EXHAUSTED
log_format = "json"                  # serve's log lines: json (one object per line) or text

[database]
url = ""                             # empty: SQLite (WAL) in this directory; or postgresql://host/db
reencrypt_interval_s = 300.0         # how often rows under newly retired data keys are re-sealed (serve)

[rabbitmq]
url = "amqp://guest:guest@127.0.0.1:5672/%2F"
urls = []                            # further nodes of the same cluster, tried in turn when a broker is lost

[auth]
# Bearer JWTs of the unified identity service (统一身份认证): its iss value(s) and public keys.
issuers = []                         # e.g. ["https://iam.example.gov.cn"]
jwks_file = ""                       # JWKS file (relative to this directory), e.g. "trust/iam-jwks.json"
pem_keys = []                        # or PEM public key files; a file's name is its key id
audience = ""                        # empty: "exnode:{node_id}"
algorithms = ["EdDSA", "ES256", "RS256"]
leeway_s = 30.0                      # clock skew allowed on exp / nbf
trust_dev_issuer = {"true" if dev else "false"}             # accept `exnode token issue` tokens: development only

[exchange]
platforms_file = "platforms.toml"    # platforms relayed to (see ops/platforms.sample.toml); absent: none
dispatch = true                      # run the outbox dispatcher with this node
dispatch_process = true              # ...in a process of its own (false: a thread of the node's process)
window = 1000                        # unconfirmed messages (one per record) in flight (publisher confirms)
claim_lease_s = 60.0                 # replicas: a dead dispatcher's claimed outbox rows go to others after this
max_attempts = 8                     # then the message is dead-lettered with the reason
max_batch_records = 5000
max_outbox_rows = 2000000            # undelivered outbox rows over which Ingest answers UNAVAILABLE (0: no bound)
peers_dir = "peers"                  # lower-tier nodes trusted here: their keys/public-keys.json, one file each

[feed]
poll_s = 1.0                         # catalog watchers look for other replicas' changes this often
publish = true                       # publish published/retired events to exnode.<id>.catalog (fanout)

[lists]
# Time limits of the demand workflow, in working days (工作日) of the holiday calendar: the shipped
# years plus <data>/holidays/YYYY.toml files an operator adds when the State Council's notice appears.
compliance_review = false            # true: the coordinator (政务数据主管部门) reviews each demand first
compliance_days = 2                  # working days for that review
answer_days = 5                      # working days for the provider's answer (有条件共享)
unpublished_answer_days = 10         # ...when the provider has not yet delivered the data to the platform
submitted_days = 10                  # calendar days a description-only demand waits to be linked
objection_days = 5                   # working days for the provider to check a record objected to

[audit]
checkpoint_every = 1000              # a signed checkpoint every N entries...
checkpoint_interval_s = 60.0         # ...or every T seconds, whichever comes first
retention_days = 180                 # at least 180 (网络安全法 第二十一条)
batch_window_ms = 5.0                # under concurrent calls, wait this long to commit more entries at once (0: never)

[checks]
retention_days = 90                  # household checks and the answers given to other nodes, then deleted

[console]
enabled = true                       # the web console (exnode serve --console-listen overrides listen)
listen = "127.0.0.1:8080"
idle_timeout_s = 900.0               # sign-in again after 15 minutes unused (等保 2.0)...
absolute_timeout_s = 28800.0         # ...and 8 hours after sign-in in any case
tls = false                          # true behind a TLS proxy: session cookies are sent over HTTPS only
'''
