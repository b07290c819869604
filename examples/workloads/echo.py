"""The demo's workload: a TCP server, and a client that streams to it and reconnects.

Each side prints one JSON line per event with its CLOCK_REALTIME time, so the demo can
put the client's view next to the agent's timestamps.

    python -m faultline.examples.workloads.echo server --bind 10.77.0.2 --port 4002
    python -m faultline.examples.workloads.echo client --connect 10.77.0.2 --port 4002 --seconds 12
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time

HEARTBEAT_S = 0.05
STALL_S = 0.5    # no echo for this long: the client calls the link dead and reconnects
BACKOFF_S = (0.1, 0.2, 0.4)


def emit(event: str, **kw: object) -> None:
    print(json.dumps({"event": event, "t_ns": time.clock_gettime_ns(time.CLOCK_REALTIME), **kw}), flush=True)


def server(bind: str, port: int) -> None:
    srv = socket.create_server((bind, port), reuse_port=True)
    emit("listening", port=port)
    while True:
        conn, _ = srv.accept()
        conn.settimeout(5)
        try:
            while data := conn.recv(4096):
                conn.sendall(data)  # echo: the client measures end-to-end liveness
        except OSError:
            pass
        finally:
            conn.close()


def client(host: str, port: int, seconds: float) -> None:
    end = time.monotonic() + seconds
    attempt, sent = 0, 0
    while time.monotonic() < end:
        try:
            s = socket.create_connection((host, port), timeout=STALL_S)
        except OSError as e:
            emit("connect_failed", error=type(e).__name__)
            time.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
            attempt += 1
            continue
        emit("connected", attempt=attempt)
        attempt = 0
        s.settimeout(STALL_S)
        try:
            while time.monotonic() < end:
                s.sendall(b"tick %08d\n" % sent)
                if len(s.recv(64)) == 0:
                    raise ConnectionError("closed by server")
                sent += 1
                time.sleep(HEARTBEAT_S)
        except (OSError, ConnectionError) as e:
            emit("disconnected", error=type(e).__name__, sent=sent)
        finally:
            s.close()
    emit("done", sent=sent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("role", choices=("server", "client"))
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--connect", default="")
    ap.add_argument("--port", type=int, default=4002)
    ap.add_argument("--seconds", type=float, default=12.0)
    a = ap.parse_args()
    try:
        if a.role == "server":
            server(a.bind, a.port)
        else:
            client(a.connect, a.port, a.seconds)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
