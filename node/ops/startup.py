"""What ``exnode serve`` checks before it serves, and how a failure to start reads: one line naming the
config key or file at fault, never a traceback (issue 7, "Bad input and faults").

A broker that does not answer is not fatal: the node serves the catalog and fills its outbox until the
broker returns (health: alive, not ready). A broker that refuses the configured credentials is: it will
not change its mind, and an operator should learn of it at once rather than from a readiness probe.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from node.config import Config, ConfigError, ServerSection
from security.keys import UnusableKey

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The node cannot start; the message is one line that names what to fix."""


def broker_location(url: str) -> str:
    """``user@host:port/vhost`` of an AMQP URL (never the password)."""
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return f"{unquote(parts.username or 'guest')}@{parts.hostname}:{parts.port or 5672} vhost {vhost!r}"


def check_broker(urls: str | Sequence[str]) -> bool:
    """True when a broker of the list accepts the configured credentials, False when none can be reached
    now; StartupError when one refuses them (wrong user or password, or no access to the vhost)."""
    urls = [urls] if isinstance(urls, str) else list(urls)
    for url in urls:
        if _check_one_broker(url):
            return True
    log.warning("no broker of %s answers; serving without relaying until one does",
                ", ".join(broker_location(url) for url in urls))
    return False


def _check_one_broker(url: str) -> bool:
    try:
        params = pika.URLParameters(url)
    except Exception as error:
        raise StartupError(f"rabbitmq.url: not an AMQP URL: {error}") from None
    params.connection_attempts, params.socket_timeout, params.blocked_connection_timeout = 1, 5, 5
    try:
        with pika.BlockingConnection(params):
            return True
    except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError) as error:
        raise StartupError(f"rabbitmq.url: the broker refused the credentials of {broker_location(url)} "
                           f"(wrong user or password): {_first_line(error)}") from None
    except pika.exceptions.ProbableAccessDeniedError as error:
        raise StartupError(f"rabbitmq.url: the broker refused access for {broker_location(url)}: "
                           f"{_first_line(error)}") from None
    except (pika.exceptions.AMQPError, OSError) as error:  # OSError: ssl.SSLError, a wrong or expired certificate
        log.warning("the broker at %s does not answer (%s); serving without relaying until it does",
                    broker_location(url), _first_line(error) or type(error).__name__)
        return False


def _loopback(host: str | None) -> bool:
    """A host this machine alone reaches: localhost, 127.0.0.0/8, ::1, or a Unix socket (no host)."""
    if not host or host == "localhost" or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _database_hosts(url: URL) -> list[str]:
    """The hosts a PostgreSQL URL reaches: its host, or each ``host=`` of a multi-host URL (ports dropped)."""
    if url.host:
        return [url.host]
    hosts = url.query.get("host", "") or ""
    listed = [hosts] if isinstance(hosts, str) else list(hosts)
    return [_without_port(h) for h in listed] or [""]


def _without_port(entry: str) -> str:
    if entry.startswith("["):  # [::1]:5432
        return entry[1:entry.index("]")] if "]" in entry else entry
    if entry.count(":") == 1:  # 10.0.0.2:5432
        return entry.split(":")[0]
    return entry  # a bare host, an IPv6 address, a socket directory


def plain_links(config: Config, listen: str = "") -> list[str]:
    """The links that cross the network without TLS: the broker's, the database's, and the gRPC port when it
    listens beyond loopback without ``server.tls_cert``."""
    found = []
    host = (listen or config.server.listen).rsplit(":", 1)[0].strip("[]")
    if not config.server.tls_cert and not _loopback(host):
        found.append(f"the gRPC port listens on {host or 'every address'} without TLS (set server.tls_cert and "
                     "server.tls_key)")
    for address in config.rabbitmq.addresses:  # every node of the cluster, not only the first
        broker = urlsplit(address)
        if broker.scheme != "amqps" and not _loopback(broker.hostname):
            found.append(f"rabbitmq.url reaches {broker.hostname} over plain AMQP (use amqps:// and rabbitmq.tls_ca)")
    database = make_url(config.database_url)
    if database.get_backend_name() == "postgresql":
        mode = str(database.query.get("sslmode", "") or "")
        for host in _database_hosts(database):
            if mode != "verify-full" and not _loopback(host):
                found.append(f"database.url reaches {host} without sslmode=verify-full (set database.tls_ca)")
    return found


def check_links(config: Config, listen: str = "") -> None:
    """A node that does not trust the development issuer refuses plain links off this machine (StartupError
    naming them) unless server.allow_plain_links says so, which is then said at start-up."""
    found = plain_links(config, listen)
    if not found:
        return
    if config.server.allow_plain_links:
        log.warning("server.allow_plain_links = true: starting with plain links: %s", "; ".join(found))
    elif not config.auth.trust_dev_issuer:
        raise StartupError(f"{'; '.join(found)}; or set server.allow_plain_links = true to accept plain links")


def explain(error: BaseException, database_url: str = "") -> str | None:
    """The one-line start-up message for an error the operator can fix; None for a bug (traceback)."""
    if isinstance(error, StartupError | ConfigError | UnusableKey | ValueError):
        return str(error)
    if isinstance(error, OSError):  # a port in use, a data directory the node may not write
        return f"{error.strerror or error}: {error.filename}" if error.filename else str(error)
    if isinstance(error, SQLAlchemyError):
        cause = getattr(error, "orig", None) or error
        where = make_url(database_url).render_as_string(hide_password=True) if database_url else "the database"
        return f"database.url {where}: {_first_line(cause)}"
    return None


def _first_line(error: BaseException) -> str:
    """Drivers put hints and URLs on later lines; the first says what went wrong."""
    text = str(error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__


def tune_gc(server: ServerSection | None = None) -> None:
    """Why: every relayed record allocates dozens of short-lived objects (parsed payload, records, envelopes,
    AMQP frames), so with CPython's defaults a young collection ran every few records and the older
    generations kept rescanning everything the node holds: about a tenth of the ingest's CPU in
    ``exnode bench relay``, and most of the watchers' p99 in ``exnode bench watchers`` (a full collection
    walks every stream's objects). What start-up built (modules, configuration) is frozen out of
    collections. The thresholds are ``server.gc_threshold0/1/2`` (``server.gc_freeze``)."""
    server = server or ServerSection()
    gc.collect()
    if server.gc_freeze:
        gc.freeze()
    gc.set_threshold(server.gc_threshold0, server.gc_threshold1, server.gc_threshold2)
