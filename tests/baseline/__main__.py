"""Record tests/baseline/recorded.json: help texts, scenario errors, journal and results shapes.

The journal and results shapes come from a chaos run's output (make chaos): --chaos-dir.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tests.baseline import RECORDED, help_texts, journal_shape, scenario_errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chaos-dir", type=Path, default=Path("build/chaos"))
    args = ap.parse_args()
    journals = [json.loads(p.read_text()) for p in sorted(args.chaos_dir.glob("*/journal.json"))]
    results = json.loads((args.chaos_dir / "results.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        errors = scenario_errors(Path(tmp))
    RECORDED.write_text(json.dumps({
        "help": help_texts(),
        "scenario_errors": errors,
        "journal_top_level": journal_shape(journals),
        "results_entry_keys": sorted(set.union(*(set(r) for r in results))),
    }, indent=1, sort_keys=True) + "\n")
    print(f"recorded {RECORDED} from {len(journals)} journals")


if __name__ == "__main__":
    main()
