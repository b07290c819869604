"""IB in the lab: the TWS-protocol gateway (port 4002, as IB Gateway's paper port) on one lab
host and IB's back end (ibserver, port 4001) on another, each a process in its namespace.

    with IbkrLab(state, run_dir) as ib:   # state: a LabState with hosts gateway and ibserver
        ib.address                        # "10.77.0.1:4002": what an IB API client connects to

The processes are the package's own modules (faultline.examples.trading.tws.*), started with
this interpreter; they are stopped (SIGTERM, then SIGKILL) when the block ends.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from faultline.controller.env.lab import LabState

API_PORT = 4002       # IB Gateway's paper-trading port
UPSTREAM_PORT = 4001  # the lab's ibserver
HOSTS = ("gateway", "ibserver")
START_TIMEOUT_S = 60.0  # a Python start: ~0.2 s here, seconds under TCG (the VM stage)


class IbkrLabError(Exception):
    pass


@dataclass
class IbkrLab:
    state: LabState
    run_dir: Path
    keep_s: float = 5.0   # an upstream outage shorter than this ends in 1102, longer in 1101
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.state.host('gateway').ipv4}:{API_PORT}"

    @property
    def upstream(self) -> str:
        """The back end as faults name it: its lab host and port."""
        return f"ibserver:{UPSTREAM_PORT}"

    def __enter__(self) -> IbkrLab:
        missing = [h for h in HOSTS if h not in self.state.hosts]
        if missing:
            raise IbkrLabError(f"the lab has no host {', '.join(missing)}: bring it up with {', '.join(HOSTS)}")
        try:
            ibs, gw = self.state.host("ibserver").ipv4, self.state.host("gateway").ipv4
            # Each is serving once its port takes a connection (ibserver's link is only a gateway
            # that logs in, so a probe does not take it).
            self._start("ibserver", ["faultline.examples.trading.tws.ibserver", "--bind", ibs,
                                     "--port", str(UPSTREAM_PORT)], lambda: _listening(ibs, UPSTREAM_PORT))
            self._start("gateway", ["faultline.examples.trading.tws.gateway", "--bind", gw, "--port", str(API_PORT),
                                    "--upstream", f"{ibs}:{UPSTREAM_PORT}", "--keep-s", str(self.keep_s)],
                        lambda: _listening(gw, API_PORT))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _start(self, host: str, module: list[str], ready: Callable[[], bool]) -> None:
        d = self.run_dir / host
        d.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "faultline.controller.env.nsexec", self.state.host(host).netns, "--",
                sys.executable, "-m", *module, "--dir", str(d)]
        with (d / "process.log").open("ab") as log:  # a pipe nobody reads could fill and stall it
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            if p.poll() is not None or time.monotonic() > deadline:
                why = f"exited {p.returncode}" if p.poll() is not None else f"not serving after {START_TIMEOUT_S} s"
                raise IbkrLabError(f"{module[0]} on {host}: {why}; see {d / 'process.log'}")
            time.sleep(0.05)  # polling the condition above, with its deadline

    def stop(self) -> None:
        """SIGTERM each process, SIGKILL one that is still there after 5 s."""
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.procs.clear()


def _listening(host: str, port: int) -> bool:
    """Its port takes a connection (the bridge's address reaches every lab host)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False
