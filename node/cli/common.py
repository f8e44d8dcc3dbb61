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


def server_address(args: argparse.Namespace) -> str:
    if args.server:
        return args.server
    try:
        return load_config(data_dir(args)).server.listen
    except ConfigError:
        return "127.0.0.1:50051"


def channel(args: argparse.Namespace) -> grpc.Channel:
    return grpc.insecure_channel(server_address(args), options=[
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ])


def call_metadata(args: argparse.Namespace) -> list[tuple[str, str]]:
    token = args.token or os.environ.get("EXNODE_TOKEN", "")
    return [("authorization", f"Bearer {token}")] if token else []


def print_json(document: Any) -> None:
    json.dump(document, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
