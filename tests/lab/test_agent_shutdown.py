"""Issue 32: a SIGTERM while the BPF programs compile is a clean shutdown: exit 0, no traceback
(bcc's "Failed to detach BPF from tracepoint" came from the signal landing on the compile thread)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit.netns import wait_until

NS = "flx-term"


@pytest.fixture
def own_ns():
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        yield NS
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)


@pytest.mark.parametrize("after_s", [0.0, 0.3, 0.6, 0.9])
def test_sigterm_while_tcp_watch_compiles_exits_0_without_a_traceback(own_ns, tmp_path, after_s):
    state = tmp_path / "state"
    tmp_path.chmod(0o700)
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        agent = subprocess.Popen([sys.executable, "-m", "faultline.agent.cli", "serve", "--netns", own_ns,
                                  "--insecure", "--listen", "127.0.0.1:7076", "--state-dir", str(state)],
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        # tcp_watch.c compiles right after tc_drop.c (about a second): the signal lands inside it.
        wait_until(lambda: "tc_drop.c " in log.read_text() or agent.poll() is not None, 120, "tc_drop.c built")
        time.sleep(after_s)  # where in that compile the signal lands (not a wait for a condition)
        agent.send_signal(signal.SIGTERM)
        rc = agent.wait(timeout=60)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    text = log.read_text()
    assert rc == 0, text
    assert "Traceback" not in text and "Failed to detach" not in text, text
    assert "stopped; healed 0 fault(s), journal empty: True" in text, text
    assert Path(state).is_dir()
