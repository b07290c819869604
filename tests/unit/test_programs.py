"""Every program the code launches is in scripts/programs.txt, so setup installs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultline.controller.env import programs
from tests import launched

REPO = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).with_name("fixtures") / "launches.py.txt"


def test_every_launched_program_is_listed_with_its_package():
    found = launched.scan(REPO)
    listed = programs.packages()
    missing = {p: where[:3] for p, where in found.items() if p not in listed}
    assert not missing, f"launched but not in scripts/programs.txt (add each with its Debian package): {missing}"
    # The scan is not blind: the programs every lab run needs are among those it found.
    assert {"ip", "ethtool", "modprobe", "redis-server", "ping", "qemu-system-x86_64"} <= set(found)


def test_the_scanner_sees_each_kind_of_launch_in_a_fixture_source():
    seen = {p for p, _ in launched.in_python(FIXTURE.read_text(), "fixture")}
    assert seen == {"modprobe", "ip", "ethtool", "ss", "bpftool", "qemu-system-x86_64", "ping", "iperf3",
                    "/bin/sleep", "mountpoint", "mount"}


def test_a_program_removed_from_the_list_fails_the_check(tmp_path, monkeypatch):
    trimmed = tmp_path / "programs.txt"
    trimmed.write_text("".join(line + "\n" for line in programs.LIST.read_text().splitlines()
                               if not line.startswith("modprobe ")))
    monkeypatch.setattr(programs, "LIST", trimmed)
    programs.packages.cache_clear()
    try:
        with pytest.raises(AssertionError, match="modprobe"):
            test_every_launched_program_is_listed_with_its_package()
    finally:
        programs.packages.cache_clear()


def test_setup_installs_from_the_list():
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "scripts/programs.txt" in setup
    core = {pkg for pkg, group in programs.packages().values() if group == "core"}
    assert {"kmod", "iproute2", "ethtool", "redis-server"} <= core


def test_a_missing_program_is_one_line_naming_its_package():
    with pytest.raises(programs.MissingProgram) as e:
        programs.require("modprobe", path="/nonexistent")
    assert str(e.value) == "modprobe not found: apt-get install kmod (scripts/setup.sh does)"
    with pytest.raises(programs.MissingProgram, match=r"^vng not found: pip install virtme-ng"):
        programs.require("vng", path="/nonexistent")
