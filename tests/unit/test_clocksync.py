from faultline.controller.agents.clocksync import Exchange, best


def test_symmetric_legs_give_the_exact_offset():
    # The agent is 500 ns ahead; each leg takes 100 ns; the agent spends 50 ns.
    e = Exchange(t1=1_000, t2=1_000 + 100 + 500, t3=1_000 + 150 + 500, t4=1_000 + 250)
    assert e.offset_ns == 500 and e.rtt_ns == 200


def test_the_lowest_round_trip_is_kept():
    slow = Exchange(0, 900, 900, 1_000)    # one long leg: offset off by 400, rtt 1000
    fast = Exchange(0, 550, 560, 110)      # rtt 100, offset 500
    c = best("a:1", [slow, fast, slow])
    assert (c.offset_ns, c.uncertainty_ns, c.samples) == (500, 50, 3)
    assert c.to_controller(10_500) == 10_000
