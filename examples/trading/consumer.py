"""The consumer (a risk engine's feed): reads market data and fills from the broker.

A consumer group, so a paused or restarted consumer resumes where it stopped and the broker
can say how far behind it is (lag). Counts distinct market-data sequence numbers, so
continuity is received / published.

    python -m examples.trading.consumer --bus 10.77.0.4:6379 --dir run/consumer
"""

from __future__ import annotations

import argparse
import socket
import time
from pathlib import Path

from examples.trading import bus as busmod
from examples.trading.wire import write_json

GROUP = "risk"
STREAMS = ["md", "fills"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bus", required=True, help="broker HOST:PORT")
    ap.add_argument("--dir", type=Path, required=True)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    bus = busmod.connect(args.bus)
    seen: set[int] = set()
    fills: set[str] = set()
    counts = {"md_received": 0, "md_max_seq": 0, "fills_received": 0, "bus_down": 0}
    last = 0.0
    while True:
        try:
            got = bus.read(GROUP, socket.gethostname(), STREAMS, block_ms=200)
        except busmod.BusDown:
            counts["bus_down"] += 1
            time.sleep(0.2)
            got = []
        acks: dict[str, list[str]] = {}
        for stream, entry_id, msg in got:
            if stream == "md":
                seen.add(int(msg["seq"]))
                counts["md_max_seq"] = max(counts["md_max_seq"], int(msg["seq"]))
            else:
                fills.add(msg["order_id"])
            acks.setdefault(stream, []).append(entry_id)
        try:
            for stream, ids in acks.items():
                bus.ack(stream, GROUP, ids)
        except busmod.BusDown:
            pass  # delivered again later; counted once (sets)
        counts["md_received"], counts["fills_received"] = len(seen), len(fills)
        if time.monotonic() - last > 0.1:
            write_json(args.dir / "stats.json", counts)
            last = time.monotonic()


if __name__ == "__main__":
    main()
