"""A stopping ``exnode serve`` ends the start-up verification of the audit chain instead of waiting for it:
the cancelled task sets the thread's stop flag and returns once the thread has let go."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

from node.grpc.server import _verify_interruptibly
from node.services.audit import VerificationStopped


def test_cancelling_the_verification_stops_its_thread_before_returning():
    entered, left = threading.Event(), threading.Event()

    def verify_recorded(principal: object, how: str, stop: threading.Event) -> None:
        entered.set()
        try:
            assert stop.wait(300), "the stop flag was never set"
            raise VerificationStopped("the node is stopping")
        finally:
            left.set()

    node = SimpleNamespace(audit=SimpleNamespace(verify_recorded=verify_recorded),
                           config=SimpleNamespace(node=SimpleNamespace(id="n1")))

    async def run() -> bool:
        task = asyncio.create_task(_verify_interruptibly(node))  # type: ignore[arg-type]
        assert await asyncio.to_thread(entered.wait, 60), "the verification never started"
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return left.is_set()
        return False

    assert asyncio.run(run()), "the task returned before the verification thread let go"
