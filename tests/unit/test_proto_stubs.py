"""The committed stubs must be exactly what `make proto` generates from agent.proto."""

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("agent_pb2.py", "agent_pb2_grpc.py", "agent_pb2.pyi")


def test_stubs_are_fresh(tmp_path):
    src = tmp_path / "faultline" / "v1"
    src.mkdir(parents=True)
    shutil.copy(ROOT / "proto/faultline/v1/agent.proto", src)
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}", f"--python_out={tmp_path}",
         f"--grpc_python_out={tmp_path}", f"--pyi_out={tmp_path}", "faultline/v1/agent.proto"],
        check=True, cwd=tmp_path,
    )
    stale = [n for n in GENERATED if not filecmp.cmp(src / n, ROOT / "proto/faultline/v1" / n, shallow=False)]
    assert stale == [], f"stubs out of date, run `make proto`: {stale}"
