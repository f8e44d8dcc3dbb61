"""The operator's page (运维): health per dependency, outbox depth and oldest age, dead letters with their
reasons, tier links — from ``node.ops.status``, which asks the policy for ``node.operate``."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request

from node.ops.status import running_state

from .app import Console, Context, Page


def operations(context: Context, request: Request, form: FormData | None) -> Page:
    assert context.node is not None
    context.target = "node"
    return Page("ops.html", {"state": running_state(context.node, context.principal)})


def register(console: Console) -> None:
    console.page("/ops", "Health/Check", operations)
