"""Must show 2: LOSS 20 % over 5,000 packets lands in the binomial 99 % interval; counters agree."""

from __future__ import annotations

from faultline.controller.agents.spec import Loss, fault_spec
from testkit.netns import udp_delivered
from testkit.stats import binomial_interval

N = 5000
P_DROP = 0.20


def test_binomial_interval_is_right():
    lo, hi = binomial_interval(5000, 0.8)
    assert 3920 < lo < 3950 and 4050 < hi < 4080  # 4000 -+ 2.576 sd (sd 28.3)


def test_loss_20_percent_is_binomial_and_counted(lab, agents):
    hosts = lab.state.hosts
    port = 5200
    r = agents["trader"].apply(fault_spec(Loss(percent=P_DROP * 100), "lab0", peers=[hosts["gateway"].ipv4 + "/32"],
                                          ports=[port], protocol="udp", direction="egress", lease_s=60))
    seen = udp_delivered(hosts["trader"].netns, hosts["gateway"].netns, hosts["gateway"].ipv4, port, N)
    [f] = [f for f in agents["trader"].list() if f.fault_id == r.fault_id]

    lo, hi = binomial_interval(N, 1 - P_DROP)
    assert lo <= len(seen) <= hi, f"delivered {len(seen)} of {N}, 99% interval [{lo}, {hi}]"
    assert f.counters.matched == N
    assert f.counters.dropped == N - len(seen)
