"""Paths root trusts (issue 32 item 1 and 3): the agent refuses, in one line naming the path and
what is wrong, a state dir, policy, TLS dir or key that is a symlink, someone else's, or writable
by group or others; the files it keeps in the state dir are never opened through a link."""

from __future__ import annotations

import os

import pytest

from faultline.agent import cli
from faultline.agent.domain import trust
from faultline.agent.domain.errors import FailedPrecondition
from faultline.agent.domain.statelock import StateLock

NOBODY = 65534


def serve(*argv: str) -> int:
    return cli.main(["serve", "--insecure", "--listen", "127.0.0.1:0", *argv])


@pytest.fixture
def as_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: the checks are against the agent's own uid and chown")


def test_a_state_dir_someone_else_made_first_is_refused(tmp_path, as_root, caplog):
    planted = tmp_path / "faultline"
    planted.mkdir()
    os.chown(planted, NOBODY, NOBODY)  # a local user made /tmp/faultline before root did
    assert serve("--state-dir", str(planted)) == 2
    assert f"state dir {planted} is owned by uid {NOBODY}, not 0" in caplog.text
    assert list(planted.iterdir()) == []  # nothing written there, nothing truncated


@pytest.mark.parametrize("how", ["symlink", "group-writable", "other-writable"])
def test_a_state_dir_that_is_a_link_or_writable_by_others_is_refused(tmp_path, as_root, caplog, how):
    target = tmp_path / "real"
    target.mkdir(mode=0o700)
    state = tmp_path / "state"
    if how == "symlink":
        state.symlink_to(target)
    else:
        state.mkdir()
        state.chmod(0o770 if how == "group-writable" else 0o703)
    assert serve("--state-dir", str(state)) == 2
    assert f"state dir {state} is {'a symlink' if how == 'symlink' else 'writable by'}" in caplog.text


def test_a_policy_owned_by_another_user_is_refused(tmp_path, as_root, caplog):
    policy = tmp_path / "agent.yaml"
    policy.write_text("restart_commands: {evil: {argv: [/bin/true]}}\n")
    os.chown(policy, NOBODY, NOBODY)
    assert serve("--state-dir", str(tmp_path / "state"), "--policy", str(policy)) == 2
    assert f"policy {policy} is owned by uid {NOBODY}" in caplog.text


def test_a_link_planted_in_the_state_dir_is_never_followed_nor_truncated(tmp_path, as_root):
    victim = tmp_path / "root-only"
    victim.write_text("precious\n")
    state = tmp_path / "state"
    trust.directory(state, "state dir", create=True)
    (state / "agent.lock").symlink_to(victim)
    with pytest.raises(FailedPrecondition, match=r"agent\.lock"):
        StateLock(state, "serve")
    assert victim.read_text() == "precious\n"


def test_the_state_dir_is_created_0700(tmp_path, as_root):
    trust.directory(tmp_path / "new", "state dir", create=True)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
