"""What a QA engineer checks after a fault: order integrity, positions, market-data continuity.

Joins the trader's order log with the gateway's executions: every order the trader placed
must be executed exactly once (by its ref: a replay under a new id shows up as a duplicate),
nothing executed that was not placed, and the positions from executions must equal the
positions the trader's intents imply. Prints one JSON object of counters (the scenario's
data-loss probe reads sent / received); `--violations` lists each problem instead.

    python -m examples.trading.check --run run/
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from controller.state import StateValidator
from examples.trading.wire import read_log

IN_FLIGHT_S = 3.0  # an order younger than this may still be on its way: not counted yet


def signed(order: dict[str, Any]) -> int:
    return int(order["qty"]) * (1 if order["side"] == "buy" else -1)


def positions(orders: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for o in orders:
        out[o["symbol"]] = out.get(o["symbol"], 0) + signed(o)
    return out


def report(run: Path, in_flight_s: float = IN_FLIGHT_S) -> tuple[dict[str, int], StateValidator]:
    intents = [r for r in read_log(run / "trader" / "orders.jsonl") if r["op"] == "intent"]
    executions = read_log(run / "gateway" / "executions.jsonl")
    horizon = time.time_ns() - int(in_flight_s * 1e9)
    settled = [o for o in intents if o["t_ns"] <= horizon]
    settled_refs = {o["ref"] for o in settled}
    placed_refs = {o["ref"] for o in intents}
    # Executions of settled orders, and of orders the trader never placed (those are violations).
    counted = [e for e in executions if e["ref"] in settled_refs or e["ref"] not in placed_refs]
    v = StateValidator()
    v.validate_order_integrity([o["ref"] for o in settled], [{"id": e["ref"]} for e in counted])
    v.validate_position_consistency(positions(settled), positions(counted))
    per_ref = Counter(e["ref"] for e in counted)
    stats = {}
    for name in ("gateway", "consumer", "trader"):
        p = run / name / "stats.json"
        stats[name] = json.loads(p.read_text()) if p.exists() else {}
    published = int(stats["gateway"].get("md_published", 0))
    received = int(stats["consumer"].get("md_received", 0))
    counters = {
        "sent": len(settled), "received": sum(1 for r in settled_refs if per_ref[r]),
        "duplicates": sum(n - 1 for r, n in per_ref.items() if n > 1),
        "violations": len(v.violations),
        "md_published": published, "md_received": received,
        "md_continuity_permille": received * 1000 // published if published else 1000,
        "replayed": int(stats["trader"].get("replayed", 0)),
        "reconnects": int(stats["trader"].get("reconnects", 0)),
        "rate_limited": int(stats["gateway"].get("rate_limited", 0)),
    }
    return counters, v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="the run directory holding trader/, gateway/, consumer/")
    ap.add_argument("--violations", action="store_true", help="list each violation; exit 1 if any")
    ap.add_argument("--in-flight", type=float, default=IN_FLIGHT_S, metavar="S",
                    help="orders younger than this are not counted yet (default %(default)s)")
    args = ap.parse_args()
    counters, v = report(args.run, args.in_flight)
    if args.violations:
        for line in v.get_violations():
            print(line)
        sys.exit(1 if v.violations else 0)
    print(json.dumps(counters))


if __name__ == "__main__":
    main()
