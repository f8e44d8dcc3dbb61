"""``exnode serve`` runs its outbox dispatcher in a process of its own (node/pipeline/dispatcher_process.py): that
process must end with its node, also when the node is killed with no chance to stop it, so a restarted
node never shares its outbox with a forgotten dispatcher; and a dispatcher process that dies on its own
is started again by its node."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

from tests.fault.support import ServedNode, exnode, platforms_toml, wait_until


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def spawned(node: ServedNode) -> list[int]:
    """The node's multiprocessing children (a fork not yet exec'd still shows the node's command line)."""
    assert node.process is not None
    found = []
    for pid in children(node.process.pid):
        try:
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                found.append(pid)
        except OSError:
            continue
    return found


def dispatcher_of(node: ServedNode) -> int:
    wait_until(lambda: spawned(node), 30, lambda: f"the dispatcher process starting: {node.log_tail()}")
    found = spawned(node)
    assert len(found) == 1, (found, node.log_tail())
    return found[0]


def test_the_dispatcher_process_is_restarted_if_it_dies_and_ends_with_its_node_whether_stopped_or_killed(tmp_path: Path):
    data = tmp_path / "node"
    init = exnode("init", "--data", str(data), "--sample", "--dev", "--node-id", f"d{uuid.uuid4().hex[:10]}")
    assert init.returncode == 0, init.stderr
    (data / "platforms.toml").write_text(platforms_toml(), encoding="utf-8")
    node = ServedNode(data, tmp_path / "node.log")
    try:
        node.start()
        crashed = dispatcher_of(node)
        os.kill(crashed, signal.SIGKILL)  # the dispatcher alone dies: the node starts another
        wait_until(lambda: spawned(node) and spawned(node) != [crashed], 60,
                   lambda: f"a new dispatcher process after {crashed} was killed: {node.log_tail()}")
        assert "the dispatcher process ended" in node.log.read_text(encoding="utf-8")
        first = dispatcher_of(node)
        assert node.stop() == 0, node.log_tail()
        wait_until(lambda: not alive(first), 30, "the dispatcher process ending after SIGTERM to its node")

        node.start()
        second = dispatcher_of(node)
        node.kill()  # kill -9: the node cannot tell its dispatcher anything
        wait_until(lambda: not alive(second), 30, lambda: f"dispatcher {second} ending after its node was killed")
    finally:
        node.close()
