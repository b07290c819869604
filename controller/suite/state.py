"""Order integrity and position consistency after a fault: what a trading QA engineer checks
once the system says it has recovered. Every problem is a readable violation naming the
order or the symbol."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ID_KEYS = ("client_order_id", "order_id", "id")
# Positions within this are equal (fractional quantities compared as floats).
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Violation:
    kind: str      # duplicate | lost | unknown | position
    subject: str   # the order id or symbol
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"


def order_id(order: object) -> str:
    """An order is its id, or a mapping / object carrying client_order_id, order_id or id."""
    if isinstance(order, str | int):
        return str(order)
    for key in ID_KEYS:
        value = order.get(key) if isinstance(order, Mapping) else getattr(order, key, None)
        if value is not None:
            return str(value)
    raise ValueError(f"cannot tell the id of order {order!r}: give ids, or items with one of {', '.join(ID_KEYS)}")


class StateValidator:
    def __init__(self) -> None:
        self._violations: list[Violation] = []

    def validate_order_integrity(self, sent_orders: Iterable[object], received_orders: Iterable[object]) -> bool:
        """Every order sent arrived exactly once, and nothing arrived that was not sent."""
        sent = Counter(order_id(o) for o in sent_orders)
        received = Counter(order_id(o) for o in received_orders)
        found = []
        for oid, n in sent.items():
            if n > 1:
                found.append(Violation("duplicate", oid, f"sent {n} times under one id"))
        for oid in sent:
            if oid not in received:
                found.append(Violation("lost", oid, "sent, never received"))
        for oid, n in received.items():
            if oid not in sent:
                found.append(Violation("unknown", oid, f"received {n} time(s), never sent"))
            elif n > 1:
                found.append(Violation("duplicate", oid, f"received {n} times"))
        self._violations += found
        return not found

    def validate_position_consistency(self, expected_position: Mapping[str, float] | float,
                                      actual_position: Mapping[str, float] | float) -> bool:
        """Positions per symbol (or one number) equal; a symbol missing on one side counts as 0."""
        exp = expected_position if isinstance(expected_position, Mapping) else {"position": expected_position}
        act = actual_position if isinstance(actual_position, Mapping) else {"position": actual_position}
        found = [Violation("position", sym, f"expected {exp.get(sym, 0)}, actual {act.get(sym, 0)}")
                 for sym in sorted(set(exp) | set(act)) if abs(exp.get(sym, 0) - act.get(sym, 0)) > TOLERANCE]
        self._violations += found
        return not found

    def get_violations(self) -> list[str]:
        return [str(v) for v in self._violations]

    @property
    def violations(self) -> list[Violation]:
        return list(self._violations)

    def reset(self) -> None:
        self._violations.clear()
