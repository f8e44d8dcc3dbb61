"""A test CA made with ``openssl``, and a PostgreSQL server and a RabbitMQ broker of the test's own that
speak only TLS with its certificates (on loopback, their own ports and directories: the shared services
are never touched). Server certificates name ``localhost`` only, so a client that reaches the same server
as ``127.0.0.1`` meets a certificate with the wrong name."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


class OpenSslCA:
    """``openssl req -x509`` for the CA; ``openssl x509 -req`` for what it signs (P-256 keys)."""

    def __init__(self, directory: Path, name: str = "exnode test CA") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.cert, self.key = directory / "ca.pem", directory / "ca.key"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                 str(self.key), "-out", str(self.cert), "-days", "3", "-subj", f"/CN={name}", cwd=directory)

    def issue(self, name: str, san: str = "DNS:localhost", days: int = 2, client: bool = False,
              usage: str = "", cn: str = "") -> Issued:
        """A certificate for ``san``; ``days=-1`` gives one that expired yesterday; ``usage`` overrides the
        extended key usage (``critical,timeStamping`` for a TSA); ``cn`` the common name (default ``name``:
        PostgreSQL's ``cert`` authentication takes the user from it)."""
        key, csr, cert = (self.directory / f"{name}.{suffix}" for suffix in ("key", "csr", "pem"))
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
                 "-out", str(csr), "-subj", f"/CN={cn or name}", cwd=self.directory)
        extensions = self.directory / f"{name}.ext"
        usage = usage or ("clientAuth" if client else "serverAuth")
        extensions.write_text(f"subjectAltName={san}\nextendedKeyUsage={usage}\n", encoding="utf-8")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key), "-CAcreateserial",
                 "-out", str(cert), "-days", str(days), "-extfile", str(extensions), cwd=self.directory)
        return Issued(cert, key)


def _wait_for_tls(port: int, ca: Path, timeout: float, what: str, log: Path,
                  process: subprocess.Popen | None = None) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only whether it answers: verification is the test's business
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                break
            time.sleep(0.3)
    raise AssertionError(f"{what} did not listen on {port} in {timeout:.0f} s: "
                         f"{log.read_text(errors='replace')[-2000:] if log.exists() else 'no log'}")


class PostgresTLS:
    """``initdb`` + ``postgres`` as the postgres user (PostgreSQL refuses root), ``ssl = on``, and a pg_hba
    that accepts TLS connections only; with ``client_ca``, only those with a client certificate of that CA
    naming the user (``cert`` authentication)."""

    def __init__(self, server: Issued, client_ca: Path | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="exnode-pg-tls-"))  # outside pytest's root-only tmp
        os.chmod(self.root, 0o755)
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "postgres.log"
        shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.use(server)
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.root}'\n"
                       "ssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\nfsync = off\n")
            if client_ca is not None:
                shutil.copyfile(client_ca, self.data / "client-ca.pem")
                shutil.chown(self.data / "client-ca.pem", "postgres", "postgres")
                conf.write("ssl_ca_file = 'client-ca.pem'\n")
        method = "cert" if client_ca is not None else "trust"
        (self.data / "pg_hba.conf").write_text(f"hostssl all all 127.0.0.1/32 {method}\n"
                                               "hostnossl all all 0.0.0.0/0 reject\n", encoding="utf-8")
        self.start()

    def _as_postgres(self, *command: str) -> None:
        result = subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True)
        if result.returncode:
            raise AssertionError(f"{' '.join(command)}: {result.stdout[-1000:]} {result.stderr[-1000:]}")

    def use(self, server: Issued) -> None:
        """Serve with this certificate (from the next start)."""
        for source, name, mode in ((server.cert, "server.pem", 0o644), (server.key, "server.key", 0o600)):
            target = self.data / name
            shutil.copyfile(source, target)
            shutil.chown(target, "postgres", "postgres")
            os.chmod(target, mode)

    def start(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def restart_with(self, server: Issued) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.use(server)
        self.start()

    def url(self, host: str = "localhost") -> str:
        return f"postgresql://postgres@{host}:{self.port}/postgres"

    def close(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", "pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


class RabbitTLS:
    """A RabbitMQ node of its own (its own node name, ports, data and log directories) with only a TLS
    listener, started with ``rabbitmq-server`` and stopped by killing its process group. The server script
    runs the broker as the rabbitmq user, so its directory and certificate files are that user's."""

    def __init__(self, ca: OpenSslCA, server: Issued) -> None:
        directory = self.directory = Path(tempfile.mkdtemp(prefix="exnode-rabbit-tls-"))
        os.chmod(directory, 0o755)
        copies = {}
        for name, source in (("ca.pem", ca.cert), ("server.pem", server.cert), ("server.key", server.key)):
            shutil.copyfile(source, directory / name)
            copies[name] = directory / name
        ca_file, cert_file, key_file = copies["ca.pem"], copies["server.pem"], copies["server.key"]
        self.port, self.dist_port = free_port(), free_port()
        self.name = f"exnodetls{uuid.uuid4().hex[:8]}@localhost"
        config = directory / "rabbitmq.conf"
        config.write_text(
            f"listeners.tcp = none\nlisteners.ssl.default = {self.port}\n"
            f"ssl_options.cacertfile = {ca_file}\nssl_options.certfile = {cert_file}\n"
            f"ssl_options.keyfile = {key_file}\nssl_options.verify = verify_peer\n"
            "ssl_options.fail_if_no_peer_cert = false\n",
            encoding="utf-8")
        (directory / "enabled_plugins").write_text("[].\n", encoding="utf-8")
        self.log = directory / "rabbit.out"
        env = {**os.environ, "RABBITMQ_NODENAME": self.name, "RABBITMQ_NODE_PORT": str(free_port()),
               "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_CONFIG_FILE": str(config),
               "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"), "RABBITMQ_LOG_BASE": str(directory / "log"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
               "RABBITMQ_PID_FILE": str(directory / "rabbit.pid"), "RABBITMQ_ADVANCED_CONFIG_FILE":
               str(directory / "advanced.config")}
        (directory / "advanced.config").write_text("[].\n", encoding="utf-8")
        for sub in ("mnesia", "log"):
            (directory / sub).mkdir(exist_ok=True)
        env["RABBITMQ_FEATURE_FLAGS_FILE"] = str(directory / "mnesia" / "feature_flags")
        for path in [directory, *directory.rglob("*")]:
            shutil.chown(path, "rabbitmq", "rabbitmq")
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(["rabbitmq-server"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        try:
            _wait_for_tls(self.port, ca.cert, 120, "the TLS RabbitMQ", self.log, self.process)
            time.sleep(1.0)  # the listener opens before the default user exists
        except BaseException:
            self.close()
            raise

    def url(self, host: str = "localhost") -> str:
        return f"amqps://guest:guest@{host}:{self.port}/%2F"

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(10)
        _stop_node(self.name)
        shutil.rmtree(self.directory, ignore_errors=True)


def _node_processes(node_name: str) -> list[int]:
    """The processes started for ``node_name`` (its environment says so): the server script's
    ``runuser`` puts the Erlang VM in a session of its own, out of reach of the script's group."""
    marker = f"RABBITMQ_NODENAME={node_name}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
    return found


def _stop_node(node_name: str, wait_s: float = 20.0) -> None:
    """Stop every process of the node (TERM, then KILL after ``wait_s``), so no test broker outlives its test."""
    for signal_number in (15, 9):
        pids = _node_processes(node_name)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal_number)
        deadline = time.monotonic() + wait_s
        while pids and _node_processes(node_name) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _node_processes(node_name):
            return
