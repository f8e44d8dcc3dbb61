"""Servers a fault test may break: PostgreSQL clusters (a primary and its streaming standby) and RabbitMQ
nodes clustered with each other, each made by the test from the installed packages, on loopback, with its
own ports, data directory, node name and Erlang cookie (and its own epmd), and gone when the test ends.
The shared PostgreSQL (5432) and RabbitMQ (5672) are never touched.

A server is killed as a machine dies: SIGKILL to its whole process group (the postmaster and every backend;
the Erlang VM and its port programs), with no shutdown of any kind."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg

from tests.fault.support import free_port, wait_until


def postgres_bin(name: str) -> str:
    """A PostgreSQL server program of the installed package (the newest major version)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    assert found, f"no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/{name}): install postgresql"
    return found[-1]


def _as_user(user: str) -> list[str]:
    """PostgreSQL refuses to run as root: under root, the programs run as ``user`` (the package's own)."""
    return ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []


class PostgresServer:
    """One PostgreSQL cluster: ``initdb`` (a primary) or ``pg_basebackup`` of a primary (a standby)."""

    def __init__(self, root: Path, name: str, user: str = "postgres") -> None:
        self.name = name
        self.user = user if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.data = root / name
        self.log = root / f"{name}.log"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def run(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run([*_as_user(self.user), *args], capture_output=True,
                                text=True, timeout=timeout)
        assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}"
        return result.stdout

    def init_primary(self, *, synchronous_standby: str = "") -> None:
        self.run(postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--locale=C.UTF-8", "--no-instructions")
        settings = {
            "listen_addresses": "'127.0.0.1'", "port": str(self.port), "unix_socket_directories": f"'{self.data}'",
            "wal_level": "replica", "max_wal_senders": "4", "hot_standby": "on", "max_connections": "60",
            "shared_buffers": "32MB", "fsync": "on", "synchronous_commit": "on", "wal_keep_size": "256MB",
            "synchronous_standby_names": f"'{synchronous_standby}'",
        }
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        with (self.data / "pg_hba.conf").open("a", encoding="utf-8") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 trust\n")

    def init_standby_of(self, primary: PostgresServer, *, via_port: int = 0) -> None:
        """A streaming standby of ``primary`` under the application name ``self.name`` (what
        synchronous_standby_names names), streaming through ``via_port`` (a test's proxy) when given."""
        self.run(postgres_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                 "-D", str(self.data), "-X", "stream", "-c", "fast")
        (self.data / "standby.signal").touch()
        shutil.chown(self.data / "standby.signal", self.user)
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"port = {self.port}\nunix_socket_directories = '{self.data}'\n"
                       f"primary_conninfo = 'host=127.0.0.1 port={via_port or primary.port} user=postgres "
                       f"application_name={self.name}'\nsynchronous_standby_names = ''\n")

    def start(self) -> None:
        with self.log.open("a", encoding="utf-8") as log:
            self.process = subprocess.Popen([*_as_user(self.user), postgres_bin("postgres"), "-D", str(self.data)],
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.accepts, 60, lambda: f"PostgreSQL {self.name} did not start: {self.log_tail()}")

    def accepts(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, f"PostgreSQL {self.name} exited: {self.log_tail()}"
        try:
            with psycopg.connect(self.conninfo("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def conninfo(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def sql(self, statement: str, database: str = "postgres") -> list[tuple]:
        with psycopg.connect(self.conninfo(database), autocommit=True, connect_timeout=5) as connection:
            cursor = connection.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def kill(self) -> None:
        """The machine is gone: SIGKILL to the postmaster and every backend at once."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def promote(self) -> None:
        """The standby becomes a primary (``pg_promote``), and answers read-write."""
        promoted = self.sql("SELECT pg_promote(wait => true, wait_seconds => 60)")
        assert promoted == [(True,)], f"pg_promote of {self.name} answered {promoted}: {self.log_tail()}"
        wait_until(lambda: self.sql("SELECT pg_is_in_recovery()") == [(False,)], 60,
                   lambda: f"{self.name} is still in recovery: {self.log_tail()}")

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def log_tail(self, lines: int = 20) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def server_root(prefix: str) -> Path:
    """A directory the servers' own users may write (pytest's tmp_path is root's alone under root)."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if os.geteuid() == 0:
        os.chmod(root, 0o755)
        shutil.chown(root, "postgres")
    return root


RABBIT_BIN = "/usr/lib/rabbitmq/bin"
"""The package's own scripts (/usr/sbin's wrappers would switch to the rabbitmq user and its shared HOME)."""


class RabbitCluster:
    """RabbitMQ nodes ``<prefix>-1@localhost``… with their own AMQP and distribution ports, data
    directories, an Erlang cookie of their own and an epmd of their own port: nothing is shared with the
    machine's broker. ``start`` boots and clusters them (``rabbitmqctl join_cluster``)."""

    def __init__(self, root: Path, size: int, *, prefix: str = "", extra_config: str = "") -> None:
        self.root = root
        self.size = size
        self.prefix = prefix or f"fx{secrets.token_hex(3)}"
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper(), encoding="ascii")
        cookie.chmod(0o400)
        self.epmd_port = free_port()
        self.nodes = [f"{self.prefix}-{i}@localhost" for i in range(1, size + 1)]
        self.ports = {node: free_port() for node in self.nodes}
        self.dist_ports = {node: free_port() for node in self.nodes}
        self.extra_config = extra_config
        self.processes: dict[str, subprocess.Popen] = {}
        self.epmd: subprocess.Popen | None = None
        (root / "env.conf").write_text("", encoding="utf-8")  # not the machine's /etc/rabbitmq/rabbitmq-env.conf

    def url(self, node: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.ports[node]}/%2F"

    @property
    def urls(self) -> list[str]:
        return [self.url(node) for node in self.nodes]

    def env(self, node: str) -> dict[str, str]:
        short = node.split("@")[0]
        return {**os.environ, "HOME": str(self.home), "ERL_EPMD_PORT": str(self.epmd_port),
                "ERL_EPMD_ADDRESS": "127.0.0.1", "RABBITMQ_CONF_ENV_FILE": str(self.root / "env.conf"),
                "RABBITMQ_NODENAME": node, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.ports[node]), "RABBITMQ_DIST_PORT": str(self.dist_ports[node]),
                "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"), "RABBITMQ_LOG_BASE": str(self.root / "log"),
                "RABBITMQ_CONFIG_FILE": str(self.root / f"{short}.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(self.root / f"{short}.pid"),
                "RABBITMQ_SERVER_ERL_ARGS": "+S 1:1 +A 4 -kernel inet_dist_use_interface {127,0,0,1}",
                "RABBITMQ_CTL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
                "ERL_CRASH_DUMP": str(self.root / f"{short}.erl_crash.dump"),  # not in the test's cwd
                "ERL_FLAGS": ""}

    def ctl(self, node: str, *args: str, timeout: float = 120, check: bool = True) -> str:
        result = subprocess.run([f"{RABBIT_BIN}/rabbitmqctl", "-n", node, *args], capture_output=True, text=True,
                                timeout=timeout, env=self.env(node))
        if check:
            assert result.returncode == 0, (f"rabbitmqctl -n {node} {' '.join(args)} exited {result.returncode}: "
                                            f"{result.stderr[-2000:]}{result.stdout[-1000:]}")
        return result.stdout

    PORT_TAKEN = ("dist_port_already_used", "eaddrinuse")
    """What a VM's log says when a port picked free was taken before it bound it (other tests of a
    shared machine pick ports too)."""

    def boot(self, node: str, *, new_ports: int = 0) -> None:
        """Start one node's VM and wait until its AMQP listener is up. On a first boot (``new_ports``
        tries), a port taken since it was picked is picked again; a restarted node keeps its AMQP port,
        which the node under test was given."""
        for attempt in range(new_ports + 1):
            try:
                self._boot_once(node)
                return
            except AssertionError as error:
                if attempt == new_ports or not any(taken in str(error).lower() for taken in self.PORT_TAKEN):
                    raise
                self.ports[node], self.dist_ports[node] = free_port(), free_port()

    def _boot_once(self, node: str) -> None:
        short = node.split("@")[0]
        (self.root / f"{short}.conf").write_text(
            "loopback_users = none\nlog.console = false\nlog.file.level = warning\n"
            f"listeners.tcp.default = 127.0.0.1:{self.ports[node]}\n{self.extra_config}", encoding="utf-8")
        (self.root / "advanced.config").write_text("[].\n", encoding="utf-8")
        (self.root / "enabled_plugins").write_text("[].\n", encoding="utf-8")
        log = (self.root / f"{short}.out").open("a", encoding="utf-8")
        self.processes[node] = subprocess.Popen([f"{RABBIT_BIN}/rabbitmq-server"], env=self.env(node), stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)
        self.await_startup(node)

    def await_startup(self, node: str, timeout: float = 120) -> None:
        """Until the node runs its broker (``await_startup`` fails at once while the VM is not yet registered)."""
        deadline = time.monotonic() + timeout
        while True:
            process = self.processes.get(node)
            if process is not None and process.poll() is not None:
                raise AssertionError(f"RabbitMQ {node} exited {process.returncode}: {self.log_tail(node)}")
            result = subprocess.run([f"{RABBIT_BIN}/rabbitmqctl", "-n", node, "await_startup", "--timeout", "30"],
                                    capture_output=True, text=True, timeout=60, env=self.env(node))
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"RabbitMQ {node} did not start within {timeout:.0f} s: {result.stderr[-1500:]}"
                                     f"{self.log_tail(node)}")
            time.sleep(1)

    def log_tail(self, node: str, lines: int = 15) -> str:
        short = node.split("@")[0]
        tails = []
        for path in [self.root / f"{short}.out", *sorted((self.root / "log").glob(f"{short}@*.log"))]:
            if path.exists():
                tails.append("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(tails)

    def start(self) -> None:
        # An epmd of our own, started here so that it is our child (the VM would start a daemon of it).
        self.epmd = subprocess.Popen([shutil.which("epmd") or "/usr/lib/erlang/bin/epmd", "-port", str(self.epmd_port),
                                      "-address", "127.0.0.1"], env=self.env(self.nodes[0]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        failures: list[BaseException] = []

        def boot(node: str) -> None:
            try:
                self.boot(node, new_ports=3)
            except BaseException as error:
                failures.append(error)

        booting = [threading.Thread(target=boot, args=(node,), daemon=True) for node in self.nodes]
        for thread in booting:  # in parallel: each VM spends its boot mostly waiting
            thread.start()
        for thread in booting:
            thread.join(200)
        if failures:
            raise failures[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", self.nodes[0])
            self.ctl(node, "start_app")
            self.await_startup(node)
        running = self.ctl(self.nodes[0], "cluster_status", "--formatter", "json")
        for node in self.nodes:
            assert node in running, f"{node} is not in the cluster: {running}"

    def kill(self, node: str) -> None:
        """The machine is gone: SIGKILL to the Erlang VM and everything it started."""
        process = self.processes.pop(node)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)

    def restart(self, node: str) -> None:
        """Boot a killed node again: it rejoins the cluster it was part of (its data directory knows it)."""
        self.boot(node)

    def queue_leader(self, queue: str) -> str:
        """The cluster node that leads a quorum queue (asked of any node that runs)."""
        for node in self.nodes:
            if node not in self.processes:
                continue
            try:  # a node that just rejoined may not answer for a while on a loaded machine: ask the next
                out = self.ctl(node, "list_queues", "name", "leader", "--formatter", "json", "--quiet",
                               check=False, timeout=60)
            except subprocess.TimeoutExpired:
                continue
            with contextlib.suppress(ValueError):
                for row in json.loads(out):
                    if row.get("name") == queue:
                        return str(row.get("leader"))
        raise AssertionError(f"no leader found for {queue}")

    def close(self) -> None:
        for node in list(self.processes):
            self.kill(node)
        if self.epmd is not None:
            self.epmd.kill()
            self.epmd.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def rabbit_cluster(size: int, **options: str) -> Iterator[RabbitCluster]:
    """A started cluster of ``size`` nodes in a directory of its own, gone afterwards."""
    root = Path(tempfile.mkdtemp(prefix="exnode-rmq-"))
    cluster = RabbitCluster(root, size, **options)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """Seconds until ``predicate()`` held."""
    started = time.monotonic()
    wait_until(predicate, timeout, what)
    return time.monotonic() - started
