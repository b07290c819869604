"""The CLI's parser: every default from parser.DEFAULTS / FAULT, so handlers read args.NAME."""

from __future__ import annotations

import pytest

from faultline.controller.cli import main as cli
from faultline.controller.cli.parser import DEFAULTS, FAULT

MINIMAL = {
    "disconnect": [], "loss": ["--percent", "5"], "delay": ["--delay", "100ms"], "duplicate": ["--percent", "1"],
    "corrupt": ["--percent", "1"], "reorder": ["--percent", "1", "--delay", "10ms"], "rate": ["--rate", "1mbit"],
    "reset": ["--port", "4002"],
}


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_every_inject_kind_gives_every_fault_field_its_one_default(kind: str) -> None:
    args = cli.build_parser().parse_args(["inject", "--agent", "h:1", kind, *MINIMAL[kind]])
    given = {"loss": "percent", "delay": "delay", "duplicate": "percent", "corrupt": "percent",
             "reorder": ("percent", "delay"), "rate": "rate"}.get(kind, ())
    for name, default in FAULT.items():
        if name not in (given if isinstance(given, tuple) else (given,)):
            assert getattr(args, name) == default, (kind, name)
    assert args.timeout == DEFAULTS["timeout"]
    assert args.duration == (DEFAULTS["reset_duration"] if kind == "reset" else DEFAULTS["duration"])


def test_lab_and_vm_defaults_come_from_the_table() -> None:
    up = cli.build_parser().parse_args(["lab", "up"])
    assert (up.hosts, up.ready_timeout, up.then) == (DEFAULTS["lab_hosts"], DEFAULTS["ready_timeout"], DEFAULTS["then"])
    vm = cli.build_parser().parse_args(["vm", "--", "true"])
    assert (vm.out, vm.memory, vm.cpus, vm.timeout) == \
        (DEFAULTS["vm_out"], DEFAULTS["memory"], DEFAULTS["cpus"], DEFAULTS["vm_timeout"])


def test_lab_up_vm_hands_the_vm_every_option_it_reads(monkeypatch) -> None:
    """`lab up --vm` runs the vm command with that command's own defaults: none may be missing
    (systemd was, when it built the options by hand)."""
    seen = {}

    def fake_vm(args):
        seen.update(vars(args))
        return 0

    monkeypatch.setattr(cli, "_run_vm", fake_vm)
    assert cli.main(["lab", "up", "--vm", "--hosts", "a,b"]) == 0
    want = {a.dest for a in cli.build_parser()._subparsers._group_actions[0].choices["vm"]._actions} - {"help"}
    assert want <= set(seen), sorted(want - set(seen))
    # As `faultline vm -- bash -c ...` parses it (the vm command drops the "--").
    assert seen["vm_command"][:3] == ["--", "bash", "-c"] and "--ready-timeout 300 --hosts a,b" in seen["vm_command"][3]
