"""An acking workload for measuring recovery and data loss honestly.

The client numbers every message and keeps it until the server acknowledges it; after a
reconnect it sends the unacknowledged ones again under the same number, so the server can
count duplicates and nothing is lost unless the client gives up. Reconnects back off
exponentially (base and max from contracts/resilience_config.yaml). Both sides keep a
stats file (JSON) current; `stats` joins them into the counters a scenario's probe reads.

    python -m faultline.examples.workloads.seqload server --bind 10.77.0.2 --port 4002 --stats run/server.json
    python -m faultline.examples.workloads.seqload client --connect 10.77.0.2 --port 4002 --stats run/client.json
    python -m faultline.examples.workloads.seqload stats --client run/client.json --server run/server.json
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

from faultline.controller.model import config as resilience

STATS_EVERY_S = 0.1


def write_json(path: Path, value: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)  # a reader never sees half a file


class Stopping(Exception):
    pass


def _on_sigterm(*_: object) -> None:
    raise Stopping()


# -- server ---------------------------------------------------------------
class Server:
    def __init__(self, stats: Path) -> None:
        self.stats_path = stats
        self.received: set[int] = set()
        self.duplicates = 0
        self.connections = 0
        self.lock = threading.Lock()

    def stats(self) -> dict[str, object]:
        with self.lock:
            return {"received": len(self.received), "duplicates": self.duplicates, "connections": self.connections}

    def serve_one(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections += 1
        buf = b""
        try:
            while data := conn.recv(65536):
                buf += data
                *lines, buf = buf.split(b"\n")
                acks = []
                for line in lines:
                    seq = int(line.split(b" ", 2)[1])  # "MSG <seq> <payload>"
                    with self.lock:
                        if seq in self.received:
                            self.duplicates += 1
                        self.received.add(seq)
                    acks.append(b"ACK %d\n" % seq)
                conn.sendall(b"".join(acks))  # acknowledged only once stored
        except (OSError, ValueError, IndexError):
            pass
        finally:
            conn.close()

    def run(self, bind: str, port: int) -> None:
        srv = socket.create_server((bind, port), reuse_port=True)
        threading.Thread(target=self.save_stats, daemon=True).start()
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=self.serve_one, args=(conn,), daemon=True).start()

    def save_stats(self) -> None:
        while True:
            write_json(self.stats_path, self.stats())
            time.sleep(STATS_EVERY_S)


# -- client ---------------------------------------------------------------
class Client:
    def __init__(self, host: str, port: int, rate: float, stats: Path, cfg: resilience.ResilienceConfig,
                 request_timeout_s: float) -> None:
        self.addr = (host, port)
        self.interval = 1.0 / rate
        self.stats_path = stats
        self.cfg = cfg
        self.request_timeout_s = request_timeout_s
        self.sent = 0                     # messages made (numbered 1..sent)
        self.unacked: OrderedDict[int, float] = OrderedDict()  # seq -> when last sent (monotonic)
        self.acked = 0
        self.resent = 0
        self.reconnects = 0
        self.connected = False
        self.gave_up = False
        self._last_stats = 0.0

    def stats(self) -> dict[str, object]:
        return {"sent": self.sent, "acked": self.acked, "unacked": len(self.unacked), "resent": self.resent,
                "reconnects": self.reconnects, "connected": self.connected, "gave_up": self.gave_up}

    def save_stats(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_stats >= STATS_EVERY_S:
            write_json(self.stats_path, self.stats())
            self._last_stats = now

    def backoff_s(self, attempt: int) -> float:
        return min(self.cfg.base_retry_delay_s * 2 ** attempt, self.cfg.max_retry_delay_s)

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds if seconds else float("inf")
        attempt = 0
        while time.monotonic() < end:
            try:
                s = socket.create_connection(self.addr, timeout=self.cfg.connection_timeout_s)
            except OSError as e:
                self._emit("connect_failed", error=type(e).__name__, attempt=attempt)
                if attempt >= self.cfg.max_retry_attempts:
                    # Still keep trying (a test wants to see recovery), but say the policy was exceeded.
                    self.gave_up = True
                self._sleep_producing(self.backoff_s(attempt), end)
                attempt += 1
                continue
            self.connected, attempt = True, 0
            self._emit("connected", reconnects=self.reconnects)
            try:
                self._session(s, end)
            except (OSError, TimeoutError) as e:
                self._emit("disconnected", error=type(e).__name__, unacked=len(self.unacked))
                self.reconnects += 1
            finally:
                s.close()
                self.connected = False
                self.save_stats(force=True)

    def _produce(self) -> None:
        self.sent += 1
        self.unacked[self.sent] = 0.0

    def _sleep_producing(self, delay_s: float, end: float) -> None:
        """Messages keep being made while disconnected: they queue, as orders would."""
        until = min(time.monotonic() + delay_s, end)
        while (left := until - time.monotonic()) > 0:
            time.sleep(min(left, self.interval))
            self._produce()
            self.save_stats()

    def _session(self, s: socket.socket, end: float) -> None:
        s.settimeout(self.request_timeout_s)  # a send that cannot go out for this long is a dead link
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_READ)
        buf = b""
        for seq in self.unacked:  # replay under the same numbers: the server dedups
            if self.unacked[seq]:
                self.resent += 1
            self.unacked[seq] = time.monotonic()
        s.sendall(b"".join(b"MSG %d x\n" % seq for seq in self.unacked))
        next_msg = time.monotonic()
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_msg:
                self._produce()
                self.unacked[self.sent] = now
                s.sendall(b"MSG %d x\n" % self.sent)
                next_msg += self.interval
            oldest = next(iter(self.unacked.values()), None)
            if oldest and now - oldest > self.request_timeout_s:
                raise TimeoutError("no ack within the request timeout")
            for _ in sel.select(timeout=max(0.0, min(next_msg - time.monotonic(), 0.05))):
                data = s.recv(65536)
                if not data:
                    raise ConnectionResetError("closed by server")
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if self.unacked.pop(int(line.split()[1]), None) is not None:
                        self.acked += 1
            self.save_stats()

    def drain(self, timeout_s: float) -> None:
        """On SIGTERM: stop making messages, give the unacknowledged ones a last chance."""
        if not self.unacked:
            return
        try:
            with socket.create_connection(self.addr, timeout=timeout_s) as s:
                s.settimeout(timeout_s)
                s.sendall(b"".join(b"MSG %d x\n" % seq for seq in self.unacked))
                buf = b""
                deadline = time.monotonic() + timeout_s
                while self.unacked and time.monotonic() < deadline and (data := s.recv(65536)):
                    buf += data
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if self.unacked.pop(int(line.split()[1]), None) is not None:
                            self.acked += 1
        except OSError:
            pass

    def _emit(self, event: str, **kw: object) -> None:
        print(json.dumps({"event": event, "t_ns": time.clock_gettime_ns(time.CLOCK_REALTIME), **kw}), flush=True)


def joined_stats(client: Path, server: Path) -> dict[str, object]:
    c = json.loads(client.read_text()) if client.exists() else {}
    s = json.loads(server.read_text()) if server.exists() else {}
    return {"sent": c.get("sent", 0), "received": s.get("received", 0), "acked": c.get("acked", 0),
            "duplicates": s.get("duplicates", 0), "resent": c.get("resent", 0), "reconnects": c.get("reconnects", 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="role", required=True)
    p = sub.add_parser("server", help="acknowledge numbered messages; count unique and duplicate ones")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, default=4002)
    p.add_argument("--stats", type=Path, required=True)
    p = sub.add_parser("client", help="send numbered messages, replay unacknowledged ones after reconnecting")
    p.add_argument("--connect", required=True)
    p.add_argument("--port", type=int, default=4002)
    p.add_argument("--stats", type=Path, required=True)
    p.add_argument("--rate", type=float, default=50.0, help="messages per second (default 50)")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: at SIGTERM)")
    p.add_argument("--config", type=Path, default=resilience.DEFAULT_PATH, help="resilience config")
    p.add_argument("--base-delay", type=float, help="first reconnect delay, s (default: the config's)")
    p.add_argument("--max-delay", type=float, help="reconnect delay cap, s (default: the config's)")
    p.add_argument("--connect-timeout", type=float, help="s (default: the config's connection_timeout_s)")
    p.add_argument("--request-timeout", type=float, help="no ack this long: reconnect (default: the config's)")
    p = sub.add_parser("stats", help="print the joined counters (sent, received, duplicates, ...) as JSON")
    p.add_argument("--client", type=Path, required=True)
    p.add_argument("--server", type=Path, required=True)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if a.role == "server":
            srv = Server(a.stats)
            try:
                srv.run(a.bind, a.port)
            finally:
                write_json(a.stats, srv.stats())
        elif a.role == "client":
            cfg = resilience.load(a.config)
            overrides = {"base_retry_delay_s": a.base_delay, "max_retry_delay_s": a.max_delay,
                         "connection_timeout_s": a.connect_timeout}
            cfg = cfg.__class__(**{**cfg.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
            cl = Client(a.connect, a.port, a.rate, a.stats, cfg, a.request_timeout or cfg.request_timeout_s)
            try:
                cl.run(a.seconds)
            except Stopping:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                cl.drain(timeout_s=2.0)
            finally:
                cl.save_stats(force=True)
        else:
            print(json.dumps(joined_stats(a.client, a.server)))
    except (Stopping, KeyboardInterrupt):
        pass
    sys.stdout.flush()
    os._exit(0)  # server threads are blocked in recv


if __name__ == "__main__":
    main()
