"""The console's listener hands asyncio sockets it recognises as TCP, so every connection gets TCP_NODELAY:
without it each page (headers, then body) waited ~40 ms for the browser's delayed ACK (measured: a
3.6 KB stylesheet took 44 ms a request, 0.6 ms with it)."""

from __future__ import annotations

import asyncio
import socket

from node.console.server import bind


def test_connections_to_the_console_listener_have_tcp_nodelay():
    async def run() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        listener = bind("127.0.0.1:0")
        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        try:
            _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            value = await accepted
            writer.close()
            return value
        finally:
            server.close()

    assert asyncio.run(run()) != 0
