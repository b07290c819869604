"""The VM half of the benchmarks (bench/vm.py) with a tiny N, so it never rots. No time is asserted."""

from __future__ import annotations

from bench import accuracy, apply_latency


def test_delay_apply_latency_runs_with_its_peers(vlab):
    result = apply_latency.measure(vlab, "delay", n=3, peer_n=1, absolute=False)
    rows = {r["mode"]: r for r in result["rows"]}
    assert list(rows) == ["faultline end to end (gRPC)", "faultline mechanism (no gRPC)", "tc command",
                          "tcconfig tcset / tcdel"]
    assert rows["tcconfig tcset / tcdel"]["cycles"] == 1
    assert all(r["apply_p50_ms"] > 0 and r["heal_p50_ms"] > 0 for r in rows.values())


def test_netem_accuracy_runs_for_faultline_and_tcconfig(vlab):
    result = accuracy.measure_netem(vlab, packets=300, pings=5)
    tools = {(r["tool"], r["fault"]) for r in result["rows"]}
    assert ("faultline", "loss 20 %") in tools and ("tcconfig", "loss 20 %") in tools
    assert ("tcconfig", "delay 100 ms jitter 10 ms normal (spread)") in tools
    rises = [r["measured"] for r in result["rows"] if r["fault"] == "delay 500 ms"]
    assert rises and 400 < rises[0] < 600  # the delay really was there
