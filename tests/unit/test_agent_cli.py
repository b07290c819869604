from agent.cli import main


def test_serve_refuses_plaintext_without_insecure(tmp_path, caplog):
    assert main(["serve", "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path / "state")]) == 2
    assert "--insecure" in caplog.text
    assert not (tmp_path / "state").exists()  # refused before touching anything


def test_insecure_is_refused_off_loopback_outside_a_namespace(tmp_path, caplog):
    assert main(["serve", "--insecure", "--listen", "0.0.0.0:7070", "--state-dir", str(tmp_path / "state")]) == 2
    assert "--insecure listens only on loopback" in caplog.text
    assert not (tmp_path / "state").exists()
