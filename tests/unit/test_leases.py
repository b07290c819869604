import threading
import time

from faultline.agent.domain.leases import Leases


def collect():
    fired: list[tuple[str, float]] = []
    done = threading.Event()

    def on_expire(fid: str) -> None:
        fired.append((fid, time.monotonic()))
        done.set()

    return fired, done, on_expire


def test_expiry_fires_once_at_deadline():
    fired, done, cb = collect()
    leases = Leases(cb)
    t0 = time.monotonic()
    leases.grant("a", time.monotonic_ns() + 150_000_000)
    assert done.wait(2)
    time.sleep(0.1)
    leases.stop()
    assert [f for f, _ in fired] == ["a"]
    assert fired[0][1] - t0 >= 0.14


def test_renew_postpones_and_revoke_cancels():
    fired, done, cb = collect()
    leases = Leases(cb)
    now = time.monotonic_ns()
    leases.grant("renewed", now + 100_000_000)
    leases.grant("revoked", now + 100_000_000)
    leases.grant("renewed", now + 400_000_000)
    leases.revoke("revoked")
    time.sleep(0.25)
    assert fired == []
    assert done.wait(2)
    leases.stop()
    assert [f for f, _ in fired] == ["renewed"]


def test_earliest_first_with_many():
    fired, _, cb = collect()
    leases = Leases(cb)
    now = time.monotonic_ns()
    for i, ms in enumerate([300, 100, 200]):
        leases.grant(f"f{i}", now + ms * 1_000_000)
    deadline = time.monotonic() + 5
    while len(fired) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    leases.stop()
    assert [f for f, _ in fired] == ["f1", "f2", "f0"]
