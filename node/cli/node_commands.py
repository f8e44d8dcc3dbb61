"""``exnode init`` and ``exnode serve``."""

from __future__ import annotations

import argparse
import asyncio
import sys

from node import bootstrap
from node.bootstrap import load_sample
from node.cli.common import add_data, data_dir
from node.config import CONFIG_FILE, load_config, render_config
from node.storage.database import migrate
from security.identity import create_dev_issuer_key
from security.keys import ALGORITHMS, KEYRING, KeyStore, write_public_keys

DEV_DEPARTMENT = "11100000MB01284764"
"""民政部社会救助司, the sample catalog's provider: the department a development node runs for, so the
README's tokens (``--dept 11100000MB01284764``) administer its catalog and pull as its platform."""


def register(sub: argparse._SubParsersAction) -> None:
    init = sub.add_parser("init", help="create the data directory, config, signing key and database")
    add_data(init)
    init.add_argument("--sample", action="store_true", help="load and publish the sample civil-affairs catalog")
    init.add_argument("--node-id", default="node", help="node id used in queue names (default: node)")
    init.add_argument("--name", default="民政数据共享交换节点", help="the node's display name")
    init.add_argument("--department-code", default="",
                      help="统一社会信用代码 of the department running the node; its `platform` callers pull "
                           f"everything (default with --dev: {DEV_DEPARTMENT}, 民政部社会救助司)")
    init.add_argument("--algorithm", default="Ed25519", choices=ALGORITHMS,
                      help="signing key type (SM2-SM3 for national-cryptography deployments)")
    init.add_argument("--dev", action="store_true",
                      help="trust tokens from `exnode token issue` (the development issuer): local use only")
    init.set_defaults(handler=run_init)

    serve = sub.add_parser("serve", help="run the node: gRPC, health, reflection and /metrics")
    add_data(serve)
    serve.add_argument("--listen", default=None, help="gRPC HOST:PORT (default: server.listen in the config)")
    serve.add_argument("--metrics-listen", default=None, help="metrics HOST:PORT (default: server.metrics_listen)")
    serve.add_argument("--console-listen", default=None,
                       help="web console HOST:PORT (default: console.listen; 'off' for none)")
    serve.set_defaults(handler=run_serve)


def run_init(args: argparse.Namespace) -> int:
    """Idempotent: an existing config and keys are kept, the database is migrated, and the sample is
    loaded only into an empty catalog, so the README's run command can be repeated."""
    directory = data_dir(args)
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / CONFIG_FILE
    if not config_path.exists():
        department = args.department_code or (DEV_DEPARTMENT if args.dev else "")
        config_path.write_text(render_config(args.node_id, args.name, department, dev=args.dev), encoding="utf-8")
        print(f"created {config_path}" + (f" (node.department_code = {department})" if department else ""))
    config = load_config(directory)
    if not (config.keys_dir / KEYRING).exists():
        keys = KeyStore.create(config.keys_dir, args.algorithm)
        print(f"created signing key {keys.active.kid} ({keys.active.algorithm}) in {config.keys_dir}")
    elif (kek := KeyStore.ensure_kek(config.keys_dir)) is not None:
        print(f"created key-encryption key {kek} in {config.keys_dir} (records are encrypted at rest)")
    write_public_keys(KeyStore.load(config.keys_dir), config.node.id)
    create_dev_issuer_key(config.keys_dir)
    migrate(config.database_url)
    print(f"database ready: {config.database_url.split('@')[-1]}")
    if args.sample:
        node = bootstrap.build(config, apply_migrations=False, start_audit=False)
        try:
            loaded = load_sample(node)
        finally:
            node.close()
        print(f"sample catalog: {loaded} resources loaded and published" if loaded
              else "sample catalog: the catalog already has resources; nothing loaded")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Start-up failures an operator can fix (a config value, a key file, a database that refuses, a
    broker that refuses the credentials) are one line on stderr naming the key or file, and exit 1."""
    from node.grpc.server import serve
    from node.ops import logs
    from node.ops.startup import check_broker, check_links, explain

    database_url = ""
    try:
        config = load_config(data_dir(args))
        database_url = config.database_url
        logs.configure(args.log_level or "INFO", args.log_format or config.server.log_format)
        check_links(config, args.listen or "")
        node = bootstrap.build(config)
        try:
            check_broker(config.rabbitmq.addresses)
            console_listen = args.console_listen or config.console.listen
            listeners = []
            if config.console.enabled and console_listen != "off" and console_listen:
                from node.console import ConsoleServer

                listeners.append(ConsoleServer(node, config.console, console_listen))
        except BaseException:
            node.close()
            raise
        asyncio.run(serve(node, args.listen or config.server.listen,
                          args.metrics_listen or config.server.metrics_listen, listeners))
    except Exception as error:
        message = explain(error, database_url)
        if message is None:
            raise
        print(f"exnode serve: cannot start: {message}", file=sys.stderr)
        return 1
    return 0
