"""``exnode tier link|unlink|verify-chain``: the three-tier hierarchy (department → region → ministry)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from urllib.parse import quote

import pika

from adapters.platforms import default_queue
from adapters.rabbit import declare_topology, shovel
from adapters.rabbit import names as rabbit_names
from node import bootstrap
from node.cli.common import UsageError, add_data, data_dir, print_json
from node.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    tier = sub.add_parser("tier", help="link nodes of different tiers with a RabbitMQ shovel; verify relayed chains")
    commands = tier.add_subparsers(dest="tier_command", required=True, metavar="SUBCOMMAND")

    link = commands.add_parser("link", help="shovel a lower node's upper-node platform queue into the upper "
                                            "node's inbound queue (rabbitmqctl set_parameter shovel)")
    link.add_argument("--lower-vhost", required=True, help="vhost of the lower node (e.g. the department's)")
    link.add_argument("--lower-node", required=True, help="node id of the lower node")
    link.add_argument("--platform", required=True, help="the lower node's platform (kind node) for the upper node")
    link.add_argument("--upper-vhost", required=True, help="vhost of the upper node")
    link.add_argument("--upper-node", required=True, help="node id of the upper node")
    link.add_argument("--name", default="", help="shovel name (default exnode-<lower>-to-<upper>)")
    link.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672",
                      help="AMQP URL of the broker without vhost, to declare both queues first")
    link.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the shovel to run (0: no wait)")
    link.add_argument("--json", action="store_true", help="machine-readable output")
    link.add_argument("--rpc", action="store_true",
                      help="also carry the request/reply queues (verification across nodes) between the vhosts")
    link.set_defaults(handler=run_link)

    unlink = commands.add_parser("unlink", help="remove a shovel made by `exnode tier link`")
    unlink.add_argument("--lower-vhost", required=True)
    unlink.add_argument("--name", required=True)
    unlink.add_argument("--upper-vhost", default="", help="with a link made with --rpc: its upper vhost")
    unlink.set_defaults(handler=run_unlink)

    verify = commands.add_parser("verify-chain", help="check every hop's signature of every record relayed here")
    add_data(verify)
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(handler=run_verify_chain)


def _declare(broker: str, vhost: str, node_id: str, queue: str) -> None:
    url = f"{broker.rstrip('/')}/{quote(vhost, safe='')}"
    pika_log = logging.getLogger("pika")
    level = pika_log.level
    pika_log.setLevel(logging.CRITICAL)  # the one-line error below says it; pika would add a traceback
    try:
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            declare_topology(connection.channel(), node_id, [queue])
    except pika.exceptions.AMQPError as error:
        raise shovel.ShovelError(f"cannot declare {queue} in vhost {vhost!r} (does the vhost exist, may the "
                                 f"user use it?): {type(error).__name__}") from None
    finally:
        pika_log.setLevel(level)


def run_link(args: argparse.Namespace) -> int:
    for flag in ("lower_node", "upper_node", "platform"):
        if not getattr(args, flag) or "." in getattr(args, flag):
            raise UsageError(f"--{flag.replace('_', '-')}: {getattr(args, flag)!r} must be a non-empty name without dots")
    if args.lower_vhost == args.upper_vhost and args.lower_node == args.upper_node:
        raise UsageError("--upper-node: a node cannot be its own upper tier")
    source = default_queue(args.lower_node, args.platform)
    target = rabbit_names(args.upper_node)["in"]
    name = args.name or f"exnode-{args.lower_node}-to-{args.upper_node}"
    _declare(args.broker, args.lower_vhost, args.lower_node, source)
    _declare(args.broker, args.upper_vhost, args.upper_node, target)
    value = shovel.definition(lower_vhost=args.lower_vhost, lower_queue=source, upper_vhost=args.upper_vhost,
                              upper_queue=target)
    shovel.set_shovel(name, args.lower_vhost, value)
    if args.rpc:
        for rpc_name, source_vhost, destination_vhost, owner, queue, rpc_value in shovel.rpc_links(
                lower_vhost=args.lower_vhost, lower_node=args.lower_node, upper_vhost=args.upper_vhost,
                upper_node=args.upper_node, name=name):
            _declare(args.broker, source_vhost, owner, queue)
            _declare(args.broker, destination_vhost, owner, queue)
            shovel.set_shovel(rpc_name, source_vhost, rpc_value)
    state = ""
    deadline = time.monotonic() + max(0.0, args.wait)
    while args.wait > 0:
        state = shovel.shovel_state(name, args.lower_vhost)
        if state == "running" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if args.json:
        print_json({"name": name, "vhost": args.lower_vhost, "state": state, "definition": value})
    else:
        print(f"shovel {name} in vhost {args.lower_vhost}: {source} → {args.upper_vhost}/{target}"
              + (f" ({state})" if state else ""))
    if args.wait > 0 and state != "running":
        print(f"exnode: shovel {name} is {state or 'not listed'} after {args.wait:.0f} s", file=sys.stderr)
        return 1
    return 0


def run_unlink(args: argparse.Namespace) -> int:
    shovel.clear_shovel(args.name, args.lower_vhost)
    print(f"shovel {args.name} removed from vhost {args.lower_vhost}")
    if args.upper_vhost:
        shovel.clear_shovel(f"{args.name}-rpc", args.upper_vhost)
        shovel.clear_shovel(f"{args.name}-rpc-reply", args.lower_vhost)
        print(f"shovels {args.name}-rpc and {args.name}-rpc-reply removed")
    return 0


def run_verify_chain(args: argparse.Namespace) -> int:
    node = bootstrap.build(load_config(data_dir(args)), start_audit=False)
    try:
        report = node.tiers.verify_chains()
    finally:
        node.close()
    problems = report.problems or []
    if args.json:
        print_json({"records": report.records, "verified": report.verified, "hops": report.hops,
                    "problems": problems})
    else:
        print(f"relayed_records={report.records} verified={report.verified} hop_signatures={report.hops}")
        for problem in problems[:50]:
            print(f"  {problem}")
    return 1 if problems else 0
