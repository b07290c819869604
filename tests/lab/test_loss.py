"""Must show 2: LOSS 20 % over 5,000 packets lands in the binomial 99 % interval; counters agree."""

from __future__ import annotations

import math
import socket
import threading
import time

from controller.client import fault_spec
from tests.netns import socket_in

N = 5000
P_DROP = 0.20


def binomial_interval(n: int, p: float, level: float = 0.99) -> tuple[int, int]:
    """Central interval [lo, hi] of Binomial(n, p) holding at least `level` of the mass (exact)."""
    logpmf = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
              + k * math.log(p) + (n - k) * math.log1p(-p) for k in range(n + 1)]
    pmf = [math.exp(x) for x in logpmf]
    tail = (1 - level) / 2
    acc, lo = 0.0, 0
    while acc + pmf[lo] <= tail:
        acc += pmf[lo]
        lo += 1
    acc, hi = 0.0, n
    while acc + pmf[hi] <= tail:
        acc += pmf[hi]
        hi -= 1
    return lo, hi


def test_binomial_interval_is_right():
    lo, hi = binomial_interval(5000, 0.8)
    assert 3920 < lo < 3950 and 4050 < hi < 4080  # 4000 -+ 2.576 sd (sd 28.3)


def test_loss_20_percent_is_binomial_and_counted(lab, agents):
    hosts = lab.state.hosts
    port = 5200
    rx = socket_in(hosts["gateway"].netns, socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind((hosts["gateway"].ipv4, port))
    rx.settimeout(1.0)
    tx = socket_in(hosts["trader"].netns, socket.AF_INET, socket.SOCK_DGRAM)
    seen: set[int] = set()

    def drain() -> None:
        while True:
            try:
                data = rx.recv(64)
            except TimeoutError:
                return
            seen.add(int.from_bytes(data[:4], "big"))

    r = agents["trader"].apply(fault_spec(
        "loss", "lab0", peers=[hosts["gateway"].ipv4 + "/32"], ports=[port], protocol="udp",
        direction="egress", loss_percent=P_DROP * 100, lease_s=60,
    ))
    reader = threading.Thread(target=drain)
    reader.start()
    for seq in range(N):
        tx.sendto(seq.to_bytes(4, "big") + b"x" * 28, (hosts["gateway"].ipv4, port))
        if seq % 50 == 49:
            time.sleep(0.002)  # keep the receiver's queue from overflowing: only the fault may drop
    reader.join()
    [f] = [f for f in agents["trader"].list() if f.fault_id == r.fault_id]
    tx.close()
    rx.close()

    lo, hi = binomial_interval(N, 1 - P_DROP)
    assert lo <= len(seen) <= hi, f"delivered {len(seen)} of {N}, 99% interval [{lo}, {hi}]"
    assert f.counters.matched == N
    assert f.counters.dropped == N - len(seen)
