"""The consumer (a risk engine's feed): reads market data and fills from the broker.

A consumer group, so a paused or restarted consumer resumes where it stopped. Counts distinct
market-data sequence numbers, so continuity is received / published. Measures its lag on
every read, from the ticks' publish times: how far behind real time it is (the oldest tick in
the batch), how many ticks it had to catch up on at once, and how long a backlog took to work
off. Each tick's age on arrival goes to md_age.jsonl: the market-data plane's latency.

    python -m faultline.examples.trading.consumer --bus 10.77.0.4:6379 --dir run/consumer
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from pathlib import Path

from faultline.examples.trading import bus as busmod
from faultline.examples.trading.wire import write_json

GROUP = "risk"
STREAMS = ["md", "fills"]
BEHIND_MS = 500    # further behind than this: a backlog episode starts...
CAUGHT_UP_MS = 100  # ...and ends when the consumer is back within this


class Lag:
    """The consumer's lag per read, and its backlog episodes."""

    def __init__(self) -> None:
        self.now_ms = self.max_ms = self.backlog_max = self.drain_ms = 0
        self.since: float | None = None

    def observe(self, ages_ms: list[float]) -> None:
        if not ages_ms:
            return
        self.now_ms = round(max(ages_ms))
        self.max_ms = max(self.max_ms, self.now_ms)
        self.backlog_max = max(self.backlog_max, len(ages_ms))
        t = time.monotonic()
        if self.now_ms > BEHIND_MS and self.since is None:
            self.since = t
        elif self.now_ms <= CAUGHT_UP_MS and self.since is not None:
            self.drain_ms = max(self.drain_ms, round((t - self.since) * 1e3))
            self.since = None

    def counters(self) -> dict[str, int]:
        return {"lag_now_ms": self.now_ms, "lag_max_ms": self.max_ms, "backlog_max": self.backlog_max,
                "drain_ms": self.drain_ms, "draining": int(self.since is not None)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bus", required=True, help="broker HOST:PORT")
    ap.add_argument("--dir", type=Path, required=True)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    bus = busmod.connect(args.bus)
    seen: set[int] = set()
    fills: set[str] = set()
    lag = Lag()
    counts = {"md_received": 0, "md_max_seq": 0, "fills_received": 0, "bus_down": 0}
    last = 0.0
    ages = (args.dir / "md_age.jsonl").open("a")
    first = True  # the first read is what was published before the consumer started: not lag
    while True:
        try:
            got = bus.read(GROUP, socket.gethostname(), STREAMS, block_ms=200)
        except busmod.BusDown:
            counts["bus_down"] += 1
            time.sleep(0.2)
            got = []
        acks: dict[str, list[str]] = {}
        now_ns = time.time_ns()
        batch_ms = []
        for stream, entry_id, msg in got:
            if stream == "md":
                seq = int(msg["seq"])
                if seq not in seen and "t_ns" in msg and not first:
                    batch_ms.append((now_ns - msg["t_ns"]) / 1e6)
                    ages.write(json.dumps([msg["t_ns"], round(batch_ms[-1], 3)]) + "\n")
                seen.add(seq)
                counts["md_max_seq"] = max(counts["md_max_seq"], seq)
            else:
                fills.add(msg["order_id"])
            acks.setdefault(stream, []).append(entry_id)
        lag.observe(batch_ms)
        first = first and not got
        try:
            for stream, ids in acks.items():
                bus.ack(stream, GROUP, ids)
        except busmod.BusDown:
            pass  # delivered again later; counted once (sets)
        counts["md_received"], counts["fills_received"] = len(seen), len(fills)
        if time.monotonic() - last > 0.1:
            ages.flush()
            write_json(args.dir / "stats.json", {**counts, **lag.counters()})
            last = time.monotonic()


if __name__ == "__main__":
    main()
