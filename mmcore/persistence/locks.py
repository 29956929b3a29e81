"""One process per (venue, account): an exclusive lock file taken before anything touches the account.

Two engines trading one account corrupt each other's state: each sees the other's orders and fills as its
own, both journals diverge from the exchange, and a restart from either rebuilds a position the exchange
does not have. :class:`AccountLock` makes the second process refuse to start instead.

The lock is an ``fcntl.flock`` (exclusive, non-blocking) on a file in the lock directory:

1. ``$MMCORE_LOCK_DIR`` if set, else
2. ``$XDG_RUNTIME_DIR/mmcore`` if ``XDG_RUNTIME_DIR`` is set, else
3. ``<tempdir>/mmcore-<uid>`` (``tempfile.gettempdir()``).

The directory is created with mode 0700 when missing; an existing one must be a real directory (not a
symlink) owned by the current user, so that another local user cannot pre-create it or point it elsewhere.
The file name is ``<readable part>-<16 hex digits of sha256(venue, account)>.lock``: one file per
(venue identity, account), where the venue identity is what the venue adapter says (the Binance session:
``binance_usdm:<endpoint or binance>`` with a hash of the API key as the account, never the key). The holder's pid
is written into the file, so the refusal can name it. The OS releases the lock when the process dies
(SIGKILL included), so a restart after a crash never finds a stale lock; the file itself stays (removing
it would let two processes lock two different files of the same name).

The lock is advisory and local: it protects one machine (one kernel) only. Two processes on two machines
(or two containers without a shared lock directory) can still trade one account.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import stat
import tempfile
import weakref
from pathlib import Path

#: Environment variable naming the lock directory (first choice).
LOCK_DIR_ENV = "MMCORE_LOCK_DIR"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class LockError(OSError):
    """The lock directory or file cannot be used (the message names it and says why)."""


class AccountLocked(LockError):
    """Another process holds the lock of this (venue, account).

    Attributes
    ----------
    pid : int or None
        The holder's pid as written in the lock file (None if unreadable).
    path : Path
        The lock file.
    """

    def __init__(self, message: str, pid: int | None, path: Path):
        super().__init__(message)
        self.pid = pid
        self.path = path

    def __str__(self) -> str:
        return self.args[0]


def lock_dir() -> Path:
    """The lock directory (module docstring: ``$MMCORE_LOCK_DIR``, ``$XDG_RUNTIME_DIR/mmcore``, temp dir)."""
    env = os.environ.get(LOCK_DIR_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "mmcore"
    return Path(tempfile.gettempdir()) / f"mmcore-{os.getuid()}"


def lock_file_name(venue: str, account: str) -> str:
    """``<readable>-<hash>.lock`` for (``venue``, ``account``); distinct pairs give distinct names (the hash
    covers both, separated, so ``("a:b", "c")`` and ``("a", "b:c")`` differ)."""
    digest = hashlib.sha256(f"{len(venue)}:{venue}\0{account}".encode()).hexdigest()[:16]
    readable = _UNSAFE.sub("_", f"{venue}_{account}")[:80].strip("._") or "account"
    return f"{readable}-{digest}.lock"


def _ensure_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise LockError(f"cannot create the lock directory {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise LockError(f"the lock directory {path} is not a directory (a symlink or file is refused)")
    if st.st_uid != os.getuid():
        raise LockError(f"the lock directory {path} belongs to uid {st.st_uid}, not to this user "
                        f"({os.getuid()}); set ${LOCK_DIR_ENV} to a directory of your own")


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _release(fd: int) -> None:
    try:
        os.close(fd)                 # closing the descriptor releases the flock
    except OSError:
        pass


class AccountLock:
    """The exclusive lock of one (venue, account) for this process.

    Parameters
    ----------
    venue : str
        Venue identity (``loopback:127.0.0.1:PORT``; for a real venue its name and an API-key hash).
    account : str
        Account name at that venue.
    directory : str or Path, optional
        Lock directory; default :func:`lock_dir`.

    Use ``lock = AccountLock(venue, account).acquire()`` ... ``lock.release()`` (or ``with``). Releasing is
    idempotent; the lock is also released when the object is collected and when the process exits or dies.
    """

    def __init__(self, venue: str, account: str, directory: str | os.PathLike | None = None):
        self.venue = venue
        self.account = account
        self.directory = Path(directory) if directory is not None else lock_dir()
        self.path = self.directory / lock_file_name(venue, account)
        self._fd: int | None = None
        self._finalizer = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> AccountLock:
        """Take the lock and write this process's pid into the file; returns ``self``.

        Raises
        ------
        AccountLocked
            Another process (or another AccountLock in this one) holds it: the message names the account,
            the venue, the holder's pid and the lock file.
        LockError
            The directory or file cannot be created, opened or locked (message names it and why).
        """
        if self._fd is not None:
            return self
        _ensure_dir(self.directory)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise LockError(f"cannot open the lock file {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            who = f"pid {pid}" if pid is not None else "another process (pid not yet written)"
            raise AccountLocked(f"account {self.account!r} on venue {self.venue} is already traded by {who} "
                                f"(lock file {self.path})", pid, self.path) from None
        except OSError as exc:
            os.close(fd)
            raise LockError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n{self.venue}\n{self.account}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise LockError(f"cannot write the lock file {self.path}: {exc.strerror or exc}") from None
        self._fd = fd
        self._finalizer = weakref.finalize(self, _release, fd)
        return self

    def release(self) -> None:
        """Release the lock (idempotent). The file stays, with the last holder's pid in it."""
        if self._fd is not None:
            self._fd = None
            self._finalizer()

    def __enter__(self) -> AccountLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
