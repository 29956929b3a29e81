"""The live runner's command line: a bad ``--connect`` (exit 2) and a journal that cannot be opened (exit 1)
each give one clear ``error`` line, no traceback, and nothing is sent anywhere (no server runs here: the
runner must stop before it connects)."""
import subprocess
import sys

import pytest

from mmcore.persistence.journal import Journal
from mmcore.runners.live_runner import main, parse_host_port

from datafiles import ROOT

BASE = ["--account", "cli-test", "--market", "binance_usdm", "--symbol", "BTCUSDT"]


@pytest.mark.parametrize("connect", ["127.0.0.1", "127.0.0.1:99999", "127.0.0.1:0", "5000", ":5000",
                                     "127.0.0.1:http", "127.0.0.1:-1", "127.0.0.1:", "", "127.0.0.1:٣"])
def test_connect_must_be_host_colon_port_in_range(connect, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["--connect", connect, "--journal", str(tmp_path / "j.db"), *BASE])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --connect: expected HOST:PORT" in err and "Traceback" not in err
    assert not (tmp_path / "j.db").exists()


@pytest.mark.parametrize("account", ["", "x" * 65, "bad\naccount"])
def test_account_must_be_a_short_printable_name(account, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["--connect", "127.0.0.1:9", "--journal", str(tmp_path / "j.db"), "--account", account,
              "--market", "binance_usdm", "--symbol", "BTCUSDT"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --account: expected 1 to 64 printable characters" in err and "Traceback" not in err


def test_connect_parses_host_and_port():
    assert parse_host_port("127.0.0.1:1") == ("127.0.0.1", 1)
    assert parse_host_port("localhost:65535") == ("localhost", 65535)
    assert parse_host_port("[::1]:5000") == ("::1", 5000)


def _run(journal, timeout=30):
    p = subprocess.run([sys.executable, "-m", "mmcore.runners.live_runner", "--connect", "127.0.0.1:9",
                        "--journal", str(journal), *BASE], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    return p.returncode, p.stderr


def test_a_journal_in_use_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "j.db"
    with Journal(path):                                   # another engine has it open
        rc, err = _run(path)
    assert rc == 1 and "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("error: ") and str(path) in err and "in use by another process" in err


@pytest.mark.parametrize("kind, code", [("directory", 1), ("not sqlite", 2)])
def test_a_journal_that_cannot_be_opened_is_an_error_line(tmp_path, kind, code):
    """A directory cannot be opened (exit 1, like an unreadable file); a file that is not a SQLite database
    is a bad argument (exit 2), as for the replay CLI (mmcore.persistence.journal.JournalPathError)."""
    path = tmp_path / "j.db"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"this is not an SQLite database\n" * 100)
    rc, err = _run(path)
    assert rc == code and "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("error: ") and "journal" in err and str(path) in err
