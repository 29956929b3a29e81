"""One process per (venue, account): mmcore.persistence.locks and the live runner's refusal of a second engine.

Issue 8: two engines on one account (different journals) kept displacing each other at the emulator, sent
the same client order ids, disagreed on orders and both exited 0. The second one must refuse to start
(exit 1, one line naming the holder's pid and the lock file) without connecting to the venue.
Loopback only; every child is killed at the end.
"""
import os
import signal
import subprocess
import sys

import pytest

from mmcore.persistence.locks import LOCK_DIR_ENV, AccountLock, AccountLocked, LockError, lock_dir, lock_file_name

from datafiles import ROOT

HOLD = ("import sys, time; from mmcore.persistence.locks import AccountLock; lock = AccountLock(sys.argv[1], sys.argv[2]).acquire(); "
        "print('held', flush=True); time.sleep(60)")


def _holder(venue, account):
    """A child process that holds the lock of (venue, account) until killed."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, venue, account], stdout=subprocess.PIPE, cwd=ROOT)
    assert p.stdout.readline() == b"held\n"
    return p


def test_lock_is_refused_while_another_process_holds_it_and_free_after_it_is_killed(tmp_path):
    venue, account = "loopback:127.0.0.1:5555", "acc"
    p = _holder(venue, account)
    try:
        with pytest.raises(AccountLocked) as exc:
            AccountLock(venue, account).acquire()
        assert exc.value.pid == p.pid and str(exc.value) == (
            f"account 'acc' on venue {venue} is already traded by pid {p.pid} (lock file {exc.value.path})")
        AccountLock(venue, "other").acquire().release()          # another account on the venue: free
        AccountLock("loopback:127.0.0.1:5556", account).acquire().release()   # the same name elsewhere
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(5)
    with AccountLock(venue, account) as lock:                    # the OS released it with the process
        assert lock.held and lock.path.read_text() == f"{os.getpid()}\n{venue}\n{account}\n"
    assert not lock.held


def test_lock_in_the_same_process_is_exclusive_and_released_once():
    a = AccountLock("v", "x").acquire()
    with pytest.raises(AccountLocked, match=f"pid {os.getpid()}"):
        AccountLock("v", "x").acquire()
    a.release()
    a.release()                                                   # idempotent
    AccountLock("v", "x").acquire().release()


def test_lock_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "a"))
    assert lock_dir() == tmp_path / "a"
    monkeypatch.delenv(LOCK_DIR_ENV)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert lock_dir() == tmp_path / "run" / "mmcore"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path / "tmp"))
    assert lock_dir() == tmp_path / "tmp" / f"mmcore-{os.getuid()}"
    AccountLock("v", "x").acquire().release()                    # creates the directory, mode 0700
    assert (tmp_path / "tmp" / f"mmcore-{os.getuid()}").stat().st_mode & 0o777 == 0o700


def test_lock_file_names_are_distinct_per_pair_and_safe():
    names = {lock_file_name(v, a) for v, a in [("a:b", "c"), ("a", "b:c"), ("a", "b_c"), ("a_b", "c"),
                                                 ("loopback:h:1", "../../etc/passwd"), ("x", "x" * 5000)]}
    assert len(names) == 6
    assert all("/" not in n and n.endswith(".lock") and len(n) < 120 for n in names)


def test_an_unsafe_lock_directory_is_refused(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "link"))
    with pytest.raises(LockError, match="not a directory"):
        AccountLock("v", "x").acquire()
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "file"))
    with pytest.raises(LockError, match="lock directory"):
        AccountLock("v", "x").acquire()
    if os.getuid() == 0:                                          # root can make a directory of another user
        other = tmp_path / "other"
        other.mkdir()
        os.chown(other, 65534, 65534)
        monkeypatch.setenv(LOCK_DIR_ENV, str(other))
        with pytest.raises(LockError, match="belongs to uid 65534"):
            AccountLock("v", "x").acquire()
