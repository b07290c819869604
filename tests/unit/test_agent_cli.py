from faultline.agent.cli import main


def test_serve_refuses_plaintext_without_insecure(tmp_path, caplog):
    assert main(["serve", "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path / "state")]) == 2
    assert "--insecure" in caplog.text
    assert not (tmp_path / "state").exists()  # refused before touching anything


def test_insecure_is_refused_off_loopback_outside_a_namespace(tmp_path, caplog):
    assert main(["serve", "--insecure", "--listen", "0.0.0.0:7070", "--state-dir", str(tmp_path / "state")]) == 2
    assert "--insecure listens only on loopback" in caplog.text
    assert not (tmp_path / "state").exists()


def test_a_signal_delivered_to_another_thread_still_reloads_and_stops() -> None:
    """The kernel may hand SIGHUP/SIGTERM to any thread (gRPC's, in the agent); the main thread
    must still act on it. Here a helper thread signals itself; a watchdog frees a hung loop."""
    import signal
    import threading
    import time

    from faultline.agent.cli import Signals

    saved = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    signals = Signals()
    reloads: list[float] = []
    reloaded, returned, hung = threading.Event(), threading.Event(), threading.Event()

    def helper() -> None:
        signal.pthread_kill(threading.get_ident(), signal.SIGHUP)
        if not reloaded.wait(5):
            hung.set()
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        if not returned.wait(5):
            hung.set()
            signals.stop.set()  # the watchdog: an old bare wait would never return
            signals.wake.set()

    def on_reload() -> None:
        reloads.append(time.monotonic() - started)
        reloaded.set()

    t = threading.Thread(target=helper)
    try:
        started = time.monotonic()
        t.start()
        signals.serve_until_stopped(on_reload, poll_s=0.2)
        returned.set()
        t.join()
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    assert not hung.is_set(), "a signal delivered to another thread was not acted on"
    assert len(reloads) == 1 and reloads[0] < 2
