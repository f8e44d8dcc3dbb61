"""The link between tiers is RabbitMQ's own dynamic shovel (plugin ``rabbitmq_shovel``), not a relay of ours.

A lower node relays to a platform of kind ``node``: queue ``exnode.<lower>.out.<platform>`` in the lower
node's vhost. The shovel moves its messages, properties and headers unchanged, into the upper node's
inbound queue ``exnode.<upper>.in`` in the upper node's vhost, acknowledging at the source only after the
destination confirmed (``ack-mode: on-confirm``): at-least-once, and the upper node deduplicates by record
id. Both queues are declared first, as the nodes declare them (durable quorum queues with the node's
dead-letter exchange), so the shovel finds them and never creates them with other arguments.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any
from urllib.parse import quote

from adapters.errors import AdapterError


class ShovelError(AdapterError, RuntimeError):
    """rabbitmqctl refused or is missing; the message says which and why."""


def vhost_uri(vhost: str) -> str:
    """A direct (in-broker) connection URI to ``vhost``: the shovel runs inside the broker."""
    return "amqp:///" + quote(vhost, safe="")


def definition(*, lower_vhost: str, lower_queue: str, upper_vhost: str, upper_queue: str,
               reconnect_delay_s: int = 1) -> dict[str, Any]:
    """The value of the ``shovel`` runtime parameter (what ``rabbitmqctl set_parameter`` takes)."""
    return {"src-protocol": "amqp091", "src-uri": vhost_uri(lower_vhost), "src-queue": lower_queue,
            "dest-protocol": "amqp091", "dest-uri": vhost_uri(upper_vhost), "dest-queue": upper_queue,
            "ack-mode": "on-confirm", "src-delete-after": "never", "reconnect-delay": reconnect_delay_s}


def rpc_links(*, lower_vhost: str, lower_node: str, upper_vhost: str, upper_node: str, name: str
              ) -> list[tuple[str, str, str, str, str, dict[str, Any]]]:
    """The request/reply queues between the tiers (verification across nodes), carried like records:
    requests the upper node puts on ``exnode.<lower>.rpc`` in its own vhost go to the lower node's request
    queue; the lower node's answers to ``exnode.<upper>.rpc-reply`` in its vhost go to the upper node's
    reply queue. Each: (shovel name, source vhost (where the shovel lives), destination vhost, the queue's
    owner node, the queue (the same name in both vhosts), the shovel's value)."""
    request_queue, reply_queue = f"exnode.{lower_node}.rpc", f"exnode.{upper_node}.rpc-reply"
    return [
        (f"{name}-rpc", upper_vhost, lower_vhost, lower_node, request_queue,
         definition(lower_vhost=upper_vhost, lower_queue=request_queue, upper_vhost=lower_vhost,
                    upper_queue=request_queue)),
        (f"{name}-rpc-reply", lower_vhost, upper_vhost, upper_node, reply_queue,
         definition(lower_vhost=lower_vhost, lower_queue=reply_queue, upper_vhost=upper_vhost,
                    upper_queue=reply_queue)),
    ]


def _rabbitmqctl(*args: str, timeout: float = 60.0) -> str:
    try:
        result = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise ShovelError("rabbitmqctl is not installed here (run this on a broker node)") from None
    except subprocess.TimeoutExpired:
        raise ShovelError(f"rabbitmqctl {args[0]} did not answer within {timeout:.0f} s") from None
    if result.returncode != 0:
        message = " ".join((result.stderr or result.stdout).split())
        raise ShovelError(f"rabbitmqctl {args[0]} failed: {message[:500]}")
    return result.stdout


def set_shovel(name: str, vhost: str, value: dict[str, Any]) -> None:
    _rabbitmqctl("set_parameter", "-p", vhost, "shovel", name, json.dumps(value))


def clear_shovel(name: str, vhost: str) -> None:
    _rabbitmqctl("clear_parameter", "-p", vhost, "shovel", name)


def shovel_state(name: str, vhost: str) -> str:
    """``running``, ``starting``, ``terminated``… as ``rabbitmqctl shovel_status`` says; "" when not listed."""
    output = _rabbitmqctl("shovel_status", "--formatter", "json")
    try:
        rows = json.loads(output)
    except ValueError:
        return ""
    for row in rows if isinstance(rows, list) else []:
        if row.get("name") == name and row.get("vhost") == vhost:
            return str(row.get("state", ""))
    return ""
