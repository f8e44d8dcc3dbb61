"""What every subcommand shares: the --data / --server / --token / --json handles."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import grpc

from node.config import ConfigError, default_data_dir, load_config


class UsageError(Exception):
    """Bad command-line use (exit 2)."""


def add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="the node's data directory (default $EXNODE_DATA, else ./.exnode)")


def data_dir(args: argparse.Namespace) -> Path:
    return args.data or default_data_dir()


def add_client(parser: argparse.ArgumentParser) -> None:
    add_data(parser)
    parser.add_argument("--server", default=None, help="HOST:PORT of the node (default: the one in the config)")
    parser.add_argument("--token", default=None, help="bearer token (default $EXNODE_TOKEN)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--tls-ca", type=Path, default=None,
                        help="PEM CA of the node's TLS certificate (default $EXNODE_TLS_CA; without it: plaintext)")
    parser.add_argument("--tls-cert", type=Path, default=None, help="client certificate for mutual TLS "
                        "(default $EXNODE_TLS_CERT)")
    parser.add_argument("--tls-key", type=Path, default=None, help="client key for mutual TLS (default $EXNODE_TLS_KEY)")


def server_address(args: argparse.Namespace) -> str:
    if args.server:
        return args.server
    try:
        return load_config(data_dir(args)).server.listen
    except ConfigError:
        return "127.0.0.1:50051"


def _tls_file(args: argparse.Namespace, name: str) -> bytes | None:
    path = getattr(args, f"tls_{name}", None) or os.environ.get(f"EXNODE_TLS_{name.upper()}")
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"--tls-{name} {path}: {error.strerror}") from None


def channel(args: argparse.Namespace) -> grpc.Channel:
    # Import refusals carry one violation per entry in the trailers: more than the default 8 KB.
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024), ("grpc.max_metadata_size", 1024 * 1024),
               ("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ca = _tls_file(args, "ca")
    if ca is None:
        return grpc.insecure_channel(server_address(args), options=options)
    credentials = grpc.ssl_channel_credentials(ca, _tls_file(args, "key"), _tls_file(args, "cert"))
    return grpc.secure_channel(server_address(args), credentials, options=options)


def call_metadata(args: argparse.Namespace) -> list[tuple[str, str]]:
    token = args.token or os.environ.get("EXNODE_TOKEN", "")
    return [("authorization", f"Bearer {token}")] if token else []


def print_json(document: Any) -> None:
    json.dump(document, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
