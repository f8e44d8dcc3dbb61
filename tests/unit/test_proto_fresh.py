"""The committed generated code must be what ops/gen-proto.sh produces from the .proto files."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh(tmp_path: Path):
    protos = sorted((ROOT / "proto" / "exnode" / "v1").glob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", *map(str, protos)],
        check=True,
    )
    stale = []
    for generated in sorted((tmp_path / "exnode" / "v1").iterdir()):
        committed = ROOT / "proto" / "exnode" / "v1" / generated.name
        if not committed.exists() or committed.read_bytes() != generated.read_bytes():
            stale.append(generated.name)
    assert not stale, f"generated code is stale, run ops/gen-proto.sh: {stale}"
