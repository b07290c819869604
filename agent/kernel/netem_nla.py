"""netem's netlink options, complete: a pyroute2 tc plugin on pyroute2's own nla classes.

pyroute2's bundled netem plugin sends no loss model (Gilbert-Elliott), no delay
distribution table, a 32-bit rate only and latency in ticks. This one speaks the
kernel's full TCA_NETEM_* set (include/uapi/linux/pkt_sched.h) and replaces the bundled
plugin for kind "netem" in this process (`register()`), so `IPRoute.tc("add", "netem", ...)`
encodes and decodes through it. No tc binary involved.
"""

from __future__ import annotations

import struct
import sys
from typing import Any

from pyroute2.netlink import nla
from pyroute2.netlink.rtnl import TC_H_ROOT
from pyroute2.netlink.rtnl.tcmsg import plugins

from faultline.agent.domain.spec import Distribution, Netem
from faultline.agent.kernel import netem_dist

parent = TC_H_ROOT
U32_MAX = 2**32 - 1
PSCHED_SHIFT = 6  # the u32 latency/jitter fields are in 64 ns ticks
# preserve_order with jitter: netem keeps order only when it paces by rate, so pace at a
# rate no link reaches (1.5 kB then costs ~15 ps).
ORDER_KEEPING_RATE = 10**14  # bytes/s


def prob(percent: float) -> int:
    """A percentage as netem's u32 probability (100 % -> 2^32-1), rounded as tc does."""
    return min(U32_MAX, max(0, round(percent / 100 * U32_MAX)))


def encode(n: Netem, limit: int) -> dict[str, Any]:
    """The TCA_OPTIONS value for `n`: tc_netem_qopt fields plus the attributes it needs."""
    ge = n.gilbert_elliott
    gap = n.reorder_gap or (1 if n.reorder else 0)  # as tc: reorder with no gap means "any packet"
    opts: dict[str, Any] = {
        "delay": min(n.delay_ns >> PSCHED_SHIFT, U32_MAX),
        "limit": limit,
        "loss": 0 if ge else prob(n.loss),
        "gap": gap,
        "duplicate": prob(n.duplicate),
        "jitter": min(n.jitter_ns >> PSCHED_SHIFT, U32_MAX),
        "attrs": [],
    }
    attrs = opts["attrs"]
    if n.delay_correlation or n.loss_correlation or n.duplicate_correlation:
        attrs.append(["TCA_NETEM_CORR", {"delay_corr": prob(n.delay_correlation),
                                          "loss_corr": prob(n.loss_correlation),
                                          "dup_corr": prob(n.duplicate_correlation)}])
    if n.reorder:
        attrs.append(["TCA_NETEM_REORDER", {"prob_reorder": prob(n.reorder),
                                             "corr_reorder": prob(n.reorder_correlation)}])
    if n.corrupt:
        attrs.append(["TCA_NETEM_CORRUPT", {"prob_corrupt": prob(n.corrupt),
                                             "corr_corrupt": prob(n.corrupt_correlation)}])
    rate = rate_bytes(n)
    if rate:
        attrs.append(["TCA_NETEM_RATE", {"rate": min(rate, U32_MAX), "packet_overhead": n.packet_overhead,
                                          "cell_size": 0, "cell_overhead": 0}])
        if rate > U32_MAX:
            attrs.append(["TCA_NETEM_RATE64", rate])
    if ge:
        # The kernel loses a packet in the bad state when a draw exceeds h: h = 1 - (tc's "1-h").
        attrs.append(["TCA_NETEM_LOSS", {"attrs": [["NETEM_LOSS_GE", {
            "p": prob(ge.p), "r": prob(ge.r), "h": prob(100 - ge.loss_in_bad), "k1": prob(ge.loss_in_good),
        }]]}])
    if n.distribution is not Distribution.UNIFORM:
        t = netem_dist.table(n.distribution)
        attrs.append(["TCA_NETEM_DELAY_DIST", struct.pack(f"={len(t)}h", *t)])
    attrs.append(["TCA_NETEM_LATENCY64", n.delay_ns])
    attrs.append(["TCA_NETEM_JITTER64", n.jitter_ns])
    return opts


def rate_bytes(n: Netem) -> int:
    if n.rate_bps:
        return max(1, n.rate_bps // 8)
    if n.preserve_order and n.jitter_ns:
        return ORDER_KEEPING_RATE
    return 0


def expected(n: Netem, limit: int) -> dict[str, int]:
    """What a dump of the qdisc must show after `encode(n, limit)` was applied."""
    ge = n.gilbert_elliott
    rate = rate_bytes(n)
    out = {
        "latency_ns": n.delay_ns, "jitter_ns": n.jitter_ns, "limit": limit,
        "loss": 0 if ge else prob(n.loss), "duplicate": prob(n.duplicate),
        "gap": n.reorder_gap or (1 if n.reorder else 0),
        "delay_corr": prob(n.delay_correlation), "loss_corr": prob(n.loss_correlation),
        "dup_corr": prob(n.duplicate_correlation),
        "reorder": prob(n.reorder), "reorder_corr": prob(n.reorder_correlation) if n.reorder else 0,
        "corrupt": prob(n.corrupt), "corrupt_corr": prob(n.corrupt_correlation) if n.corrupt else 0,
        "rate": rate,
    }
    if ge:
        out |= {"ge_p": prob(ge.p), "ge_r": prob(ge.r), "ge_h": prob(100 - ge.loss_in_bad),
                "ge_k1": prob(ge.loss_in_good)}
    return out


def observed(opts: Any) -> dict[str, int]:
    """The same keys as `expected`, read from a dumped qdisc's decoded TCA_OPTIONS."""
    corr = opts.get_attr("TCA_NETEM_CORR") or {}
    reorder = opts.get_attr("TCA_NETEM_REORDER") or {}
    corrupt = opts.get_attr("TCA_NETEM_CORRUPT") or {}
    rate = opts.get_attr("TCA_NETEM_RATE") or {}
    rate64 = opts.get_attr("TCA_NETEM_RATE64")
    lat = opts.get_attr("TCA_NETEM_LATENCY64")
    jit = opts.get_attr("TCA_NETEM_JITTER64")
    out = {
        "latency_ns": lat if lat is not None else opts["delay"] << PSCHED_SHIFT,
        "jitter_ns": jit if jit is not None else opts["jitter"] << PSCHED_SHIFT,
        "limit": opts["limit"], "loss": opts["loss"], "duplicate": opts["duplicate"], "gap": opts["gap"],
        "delay_corr": corr.get("delay_corr", 0), "loss_corr": corr.get("loss_corr", 0),
        "dup_corr": corr.get("dup_corr", 0),
        "reorder": reorder.get("prob_reorder", 0), "reorder_corr": reorder.get("corr_reorder", 0),
        "corrupt": corrupt.get("prob_corrupt", 0), "corrupt_corr": corrupt.get("corr_corrupt", 0),
        "rate": rate64 if rate64 else rate.get("rate", 0),
    }
    loss = opts.get_attr("TCA_NETEM_LOSS")
    ge = loss.get_attr("NETEM_LOSS_GE") if loss else None
    if ge:
        out |= {"ge_p": ge["p"], "ge_r": ge["r"], "ge_h": ge["h"], "ge_k1": ge["k1"]}
    return out


def get_parameters(kwarg: dict[str, Any]) -> dict[str, Any]:
    return encode(kwarg["netem"], kwarg["limit"])


def fix_request(request: dict[str, Any]) -> None:
    for key in ("netem", "limit"):
        request.pop(key, None)


def register() -> None:
    """Make this module pyroute2's tc plugin for netem (idempotent, process-wide)."""
    plugins["netem"] = sys.modules[__name__]


class options(nla):
    nla_map = (
        ("TCA_NETEM_UNSPEC", "none"),
        ("TCA_NETEM_CORR", "netem_corr"),
        ("TCA_NETEM_DELAY_DIST", "cdata"),
        ("TCA_NETEM_REORDER", "netem_reorder"),
        ("TCA_NETEM_CORRUPT", "netem_corrupt"),
        ("TCA_NETEM_LOSS", "netem_loss"),
        ("TCA_NETEM_RATE", "netem_rate"),
        ("TCA_NETEM_ECN", "uint32"),
        ("TCA_NETEM_RATE64", "uint64"),
        ("TCA_NETEM_PAD", "none"),
        ("TCA_NETEM_LATENCY64", "int64"),
        ("TCA_NETEM_JITTER64", "int64"),
        ("TCA_NETEM_SLOT", "hex"),
        ("TCA_NETEM_SLOT_DIST", "hex"),
        ("TCA_NETEM_PRNG_SEED", "uint64"),
    )
    # struct tc_netem_qopt
    fields = (
        ("delay", "I"),
        ("limit", "I"),
        ("loss", "I"),
        ("gap", "I"),
        ("duplicate", "I"),
        ("jitter", "I"),
    )

    class netem_corr(nla):
        fields = (("delay_corr", "I"), ("loss_corr", "I"), ("dup_corr", "I"))

    class netem_reorder(nla):
        fields = (("prob_reorder", "I"), ("corr_reorder", "I"))

    class netem_corrupt(nla):
        fields = (("prob_corrupt", "I"), ("corr_corrupt", "I"))

    class netem_rate(nla):
        fields = (("rate", "I"), ("packet_overhead", "i"), ("cell_size", "I"), ("cell_overhead", "i"))

    class netem_loss(nla):
        nla_map = (
            ("NETEM_LOSS_UNSPEC", "none"),
            ("NETEM_LOSS_GI", "netem_gimodel"),
            ("NETEM_LOSS_GE", "netem_gemodel"),
        )

        class netem_gimodel(nla):
            fields = (("p13", "I"), ("p31", "I"), ("p32", "I"), ("p14", "I"), ("p23", "I"))

        class netem_gemodel(nla):
            fields = (("p", "I"), ("r", "I"), ("h", "I"), ("k1", "I"))
