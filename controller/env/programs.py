"""The external programs faultline runs, and a one-line error when one is missing.

scripts/programs.txt is the one list (program, Debian package, group); setup installs from
it and tests/unit/test_programs.py keeps it complete.
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

LIST = Path(__file__).resolve().parents[2] / "scripts" / "programs.txt"


class MissingProgram(RuntimeError):
    """A program faultline needs is not installed; the message names its package."""


@cache
def packages() -> dict[str, tuple[str, str]]:
    """program -> (package, group), from scripts/programs.txt ({} where the list is not shipped)."""
    if not LIST.exists():
        return {}
    found = {}
    for line in LIST.read_text().splitlines():
        words = line.split()
        if len(words) >= 3 and not line.startswith("#"):
            found[words[0]] = (words[1], words[2])
    return found


def hint(program: str) -> str:
    """'install kmod (scripts/setup.sh does)' or the nearest thing to it."""
    package, group = packages().get(Path(program).name, ("", ""))
    if not package:
        return "install the package that provides it"
    if group == "pip":
        return f"pip install {package} (scripts/setup.sh does)"
    setup = {"core": "scripts/setup.sh", "vm": "scripts/setup.sh --with-vm"}.get(group)
    return f"apt-get install {package}" + (f" ({setup} does)" if setup else "")


def require(program: str, path: str | None = None) -> str:
    """The full path of `program`, or MissingProgram: 'modprobe not found: apt-get install kmod (...)'."""
    found = shutil.which(program, path=path)
    if found is None:
        raise MissingProgram(f"{program} not found: {hint(program)}")
    return found
