"""Rollbacks, which always run (error, failed assertion or Ctrl-C): every fault this run applied
and has not healed is healed, then the scenario file's own rollbacks run in order. A failure is
journaled and makes the verdict fail; it never stops the rest (each fault's lease is the last
resort)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

from faultline.controller.agents.client import AgentClient, AgentError
from faultline.controller.model.scenario import Rollback
from faultline.controller.run.journal import Journal
from faultline.controller.run.method import Method

COMMAND_TIMEOUT_S = 60


def roll_back(method: Method, rollbacks: Sequence[Rollback], clients: dict[str, AgentClient],
              resolve: Callable[[str], str], in_host: Callable[[str, Sequence[str]], list[str]],
              journal: Journal, event: Callable[[str], None]) -> bool:
    """True when everything was undone. A command's placeholders are filled by `resolve`; with a
    host, it runs there (`in_host`)."""
    ok = True
    for step, a in method.unhealed():
        try:
            method.heal_one(a.host, a.fault_id, "rollback")
            event(f"rollback: healed {a.fault_id} on {a.host} (step {step})")
        except AgentError as e:
            ok = False
            journal.record("rollback", a.host, fault_id=a.fault_id, error=str(e))
            event(f"rollback FAILED on {a.host}: {e} (its lease heals it)")
    for rb in rollbacks:
        try:
            if rb.kind == "heal_all":
                for h in rb.hosts:
                    healed = clients[h].heal_all()
                    journal.record("rollback", h, action="heal_all", healed=[f.fault_id for f in healed])
            else:
                argv = [resolve(a) for a in rb.argv]
                r = subprocess.run(in_host(rb.host, argv) if rb.host else argv, capture_output=True, text=True,
                                   timeout=COMMAND_TIMEOUT_S, check=False)
                journal.record("rollback", rb.host or "controller", argv=argv, returncode=r.returncode,
                               output=(r.stdout + r.stderr)[-500:])
                ok = ok and r.returncode == 0
        except (AgentError, OSError, subprocess.TimeoutExpired, KeyError) as e:
            ok = False
            journal.record("rollback", rb.kind, error=str(e))
    return ok
