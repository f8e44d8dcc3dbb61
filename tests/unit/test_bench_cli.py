"""Every ``exnode bench`` command hands its options to its benchmark in the benchmark's own terms.

Why: the benchmarks' own tests (tests/bench, run on demand) call their ``main`` directly, so a handler that
passes an option the benchmark does not take (``bench pull`` once passed ``import_only``) failed only when a
person ran it, or ``bench scale`` ran it in a child process."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

import pytest

from node.cli import main

COMMANDS = {
    "catalog": ("node.bench.catalog", "main", []),
    "rpc": ("node.bench.rpc", "main", []),
    "relay": ("node.bench.relay", "main", []),
    "console": ("node.bench.console", "main", []),
    "pull": ("node.bench.pull", "main", []),
    "pull --ingest": ("node.bench.pull", "main_ingest", ["--counts", "1000"]),
    "scale": ("node.bench.scale", "main", []),
    "fanout": ("node.bench.fanout", "main", []),
    "watchers": ("node.bench.watchers", "main", []),
    "verify": ("node.bench.verify", "main", []),
}


def _checked(real: Callable[..., int], calls: list[inspect.BoundArguments]) -> Callable[..., int]:
    signature = inspect.signature(real)

    def stand_in(*args: object, **kwargs: object) -> int:
        calls.append(signature.bind(*args, **kwargs))  # TypeError when the benchmark does not take them
        return 0
    return stand_in


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_bench_command_calls_its_benchmark_with_arguments_it_takes(command: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    module_name, function, extra = COMMANDS[command]
    module = importlib.import_module(module_name)
    calls: list[inspect.BoundArguments] = []
    monkeypatch.setattr(module, function, _checked(getattr(module, function), calls))

    assert main(["bench", *command.split(), *extra]) == 0
    assert len(calls) == 1


def test_every_bench_command_is_covered() -> None:
    from node.cli import build_parser

    parser = build_parser()
    bench = next(a for a in parser._subparsers._group_actions[0].choices["bench"]._actions
                 if a.dest == "bench_command")
    assert set(bench.choices) == {command.split()[0] for command in COMMANDS}
