"""The console's own listener, run by ``exnode serve`` in the node's event loop (uvicorn, without its
signal handling: the node's serve loop owns SIGINT/SIGTERM and stops the console with the rest)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Iterator

import uvicorn

from node.bootstrap import Node
from node.config import ConsoleSection
from node.ops.startup import StartupError

from . import pages_admin, pages_officer, pages_operator, pages_partner
from .app import Console, Context, Page

log = logging.getLogger(__name__)


class ConsoleStartError(StartupError):
    """The console cannot listen: one line naming the key and the address."""


def build_console(node: Node, settings: ConsoleSection) -> Console:
    console = Console(node, settings)
    console.page("/", "Console/Home", _home)
    for pages in (pages_officer, pages_partner, pages_admin, pages_operator):
        pages.register(console)
    return console


def _home(context: Context, request: object, form: object) -> Page:
    return Page("home.html", {})


class _Embedded(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConsoleStartError(f"console.listen: {listen!r} is not HOST:PORT")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on connections whose socket says TCP; without
    # it every response (headers, then body) waited ~40 ms for the browser's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as error:
        sock.close()
        held = " (another exnode serve, or another program, is listening there)" \
            if error.errno == errno.EADDRINUSE else ""
        raise ConsoleStartError(f"console.listen {listen}: {error.strerror}{held}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class ConsoleServer:
    """Bound at construction (a taken port fails ``exnode serve`` before it serves anything), served by
    ``start`` in the running loop, stopped by ``stop``."""

    def __init__(self, node: Node, settings: ConsoleSection, listen: str) -> None:
        self.console = build_console(node, settings)
        self.socket = bind(listen)
        host, port = self.socket.getsockname()[:2]
        self.address = f"{f'[{host}]' if ':' in host else host}:{port}"
        self.server = _Embedded(uvicorn.Config(self.console.asgi(), log_config=None, access_log=False,
                                               lifespan="off", server_header=False, proxy_headers=False,
                                               timeout_graceful_shutdown=5))
        self._task: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}/"

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve(sockets=[self.socket]))
        while not self.server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.socket.close()
