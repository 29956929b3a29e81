"""SQLite journal: schema and pragmas, round trip through load(), de-duplication, flush/durable
visibility, writer errors, and no acknowledged fill lost when the process is SIGKILLed."""
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from mmcore.persistence.journal import (SCHEMA_VERSION, FillRow, Journal, JournalError, NullJournal, OrderRow,
                            PositionRow)

TERMINAL = {"FILLED", "CANCELED", "REJECTED"}


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "journal.db")


@pytest.fixture
def journal(db):
    j = Journal(db)
    yield j
    try:
        j.close()
    except JournalError:
        pass


def _peek(db, sql, args=()):
    """Read with a connection of our own (not the journal's)."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("level, value", [("FULL", 2), ("NORMAL", 1)])
def test_new_database_has_schema_wal_mode_and_the_requested_synchronous_level(db, level, value):
    with Journal(db, synchronous=level) as j:
        assert j.journal_mode == "wal"
        assert j.synchronous == value                 # read back from PRAGMA synchronous
        assert _peek(db, "PRAGMA journal_mode") == [("wal",)]   # WAL is persistent in the file
        assert _peek(db, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
        tables = {r[0] for r in _peek(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"orders", "order_events", "fills", "positions", "kv"} <= tables


def test_unknown_synchronous_level_is_refused(db):
    with pytest.raises(ValueError):
        Journal(db, synchronous="OFF")


def test_database_with_another_schema_version_is_refused(db):
    Journal(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="schema version 99"):
        Journal(db)
    Journal(db.replace("journal.db", "other.db")).close()   # the failed open released its lock


def test_orders_events_fills_positions_and_kv_round_trip_through_load(journal):
    j = journal
    j.record_order(100, "mm1", 1, 618000, 5, "SENT")
    j.record_event(100, "mm1", "submit", None, "SENT")
    j.record_order(110, "mm1", 1, 618000, 5, "OPEN", venue_order_id="V1")
    j.record_event(110, "mm1", "accepted", "SENT", "OPEN", detail="V1")
    j.record_order(120, "mm2", -1, 618010, 2, "OPEN", venue_order_id="V2")
    j.record_order(121, "mm2", -1, 618010, 2, "OPEN")          # no venue id: the stored one stays
    j.record_fill(130, "mm2", 7, -1, 618010, 2, Decimal("-0.00012300"))
    j.record_event(130, "mm2", "filled", "OPEN", "FILLED")      # terminal: not loaded as open
    j.record_fill(140, "mm1", 9, 1, 618000, 2, Decimal("0.0001"))
    j.record_fill(140, "mm1", 8, 1, 618000, 1, Decimal("0"))    # same ts: insertion order kept
    j.record_position(150, 3, -1854000, Decimal("0.0001"))
    j.record_position(160, 0, 5, Decimal("-0.00002300"))
    j.set_kv("coid_counter", 2)
    j.set_kv("session", "abc")
    j.set_kv("coid_counter", 3)

    st = j.load(TERMINAL)

    assert st.open_orders == [OrderRow("mm1", "V1", 1, 618000, 5, 3, "OPEN", 100, 140)]
    assert [(e.event, e.old_state, e.new_state, e.detail) for e in st.events] == [
        ("submit", None, "SENT", None), ("accepted", "SENT", "OPEN", "V1")]
    assert st.fills == [FillRow(130, "mm2", 7, -1, 618010, 2, Decimal("-0.00012300")),
                        FillRow(140, "mm1", 9, 1, 618000, 2, Decimal("0.0001")),
                        FillRow(140, "mm1", 8, 1, 618000, 1, Decimal("0"))]
    assert str(st.fills[0].fee) == "-0.00012300"                 # exact string, exponent kept
    assert st.position == PositionRow(160, 0, 5, Decimal("-0.00002300"))
    assert st.kv == {"coid_counter": 3, "session": "abc"}
    assert _peek(j.path, "SELECT venue_order_id, filled_lots, state FROM orders WHERE client_order_id = 'mm2'") \
        == [("V2", 2, "FILLED")]
    assert j.known_trade_ids() == {("mm2", 7), ("mm1", 9), ("mm1", 8)}


def test_load_with_no_terminal_states_returns_every_order(journal):
    journal.record_order(1, "a", 1, 10, 1, "FILLED")
    journal.record_order(2, "b", 1, 10, 1, "OPEN")
    assert [o.client_order_id for o in journal.load(set()).open_orders] == ["a", "b"]
    assert [o.client_order_id for o in journal.load({"FILLED"}).open_orders] == ["b"]


def test_load_refuses_non_string_terminal_states(journal):
    with pytest.raises(TypeError):
        journal.load({2, 3})


def test_duplicate_fill_is_ignored_and_reported_also_after_reopening(db):
    with Journal(db) as j:
        j.record_order(1, "mm1", 1, 100, 5, "OPEN")
        assert j.record_fill(2, "mm1", 42, 1, 100, 2, Decimal("0.01")) is True
        assert j.record_fill(3, "mm1", 42, 1, 100, 2, Decimal("0.01")) is False
        assert j.record_fill(3, "mm1", 43, 1, 100, 1, Decimal("0.01")) is True
    with Journal(db) as j:
        assert j.record_fill(4, "mm1", 42, 1, 100, 2, Decimal("0.01"), durable=True) is False
        st = j.load(TERMINAL)
    assert [(f.trade_id, f.ts_ns) for f in st.fills] == [(42, 2), (43, 3)]
    assert st.open_orders[0].filled_lots == 3                     # the duplicate did not add to it


def test_record_fill_refuses_float_fee_and_non_int_trade_id(journal):
    with pytest.raises(TypeError):
        journal.record_fill(1, "mm1", 1, 1, 100, 1, 0.01)
    with pytest.raises(TypeError):
        journal.record_fill(1, "mm1", "1", 1, 100, 1, Decimal("0.01"))
    with pytest.raises(TypeError):
        journal.record_position(1, 0, 0, 0.5)


def test_flush_makes_queued_writes_visible_to_another_connection(journal):
    for i in range(500):
        journal.record_fill(i, "mm1", i, 1, 100, 1, Decimal("0.001"))
    journal.set_kv("k", "v")
    journal.flush(timeout=5)
    assert _peek(journal.path, "SELECT count(*), sum(trade_id) FROM fills") == [(500, sum(range(500)))]
    assert _peek(journal.path, "SELECT value FROM kv WHERE key = 'k'") == [("v",)]


def test_durable_write_is_committed_when_the_call_returns(journal):
    for i in range(2000):     # a backlog the writer cannot have committed by the time we look
        journal.record_event(i, "mm1", "e", None, None, "x" * 100)
    journal.record_fill(5000, "mm1", 1, 1, 100, 1, Decimal("0.001"), durable=True)
    assert _peek(journal.path, "SELECT count(*) FROM fills") == [(1,)]
    assert _peek(journal.path, "SELECT count(*) FROM order_events") == [(2000,)]
    journal.record_order(6000, "mm2", -1, 101, 1, "OPEN", venue_order_id="V9", durable=True)
    assert _peek(journal.path, "SELECT venue_order_id FROM orders") == [("V9",)]


def test_bad_value_surfaces_on_flush_counted_logged_and_neighbours_kept(journal, caplog):
    caplog.set_level(logging.ERROR, logger="mmcore.journal")
    journal.record_fill(1, "mm1", 1, 1, 100, 1, Decimal("0"))
    journal.record_order(2, "mm1", 1, 100.5, 1, "OPEN")          # float price: refused by STRICT table
    journal.record_fill(3, "mm1", 2, 1, 100, 1, Decimal("0"))
    with pytest.raises(JournalError) as exc:
        journal.flush()
    assert isinstance(exc.value.__cause__, sqlite3.IntegrityError)
    assert journal.errors == 1
    assert any(r.name == "mmcore.journal" and "lost" in r.getMessage() for r in caplog.records)
    assert _peek(journal.path, "SELECT trade_id FROM fills ORDER BY trade_id") == [(1,), (2,)]
    journal.flush()                                               # each failure is raised once
    journal.record_position(4, 0, 2**63, Decimal(0))             # beyond int64
    with pytest.raises(JournalError):
        journal.record_order(5, "mm3", 1, 100, 1, "OPEN", durable=True)
    assert journal.errors == 2


def test_a_fill_that_did_not_reach_the_database_is_written_when_delivered_again(journal):
    assert journal.record_fill(1, "mm1", 7, 1, 100.5, 1, Decimal("0"))     # float price: refused by STRICT
    with pytest.raises(JournalError):
        journal.flush()
    assert _peek(journal.path, "SELECT count(*) FROM fills") == [(0,)]
    assert journal.record_fill(1, "mm1", 7, 1, 100, 1, Decimal("0"))       # not a duplicate: it was lost
    journal.flush()
    assert _peek(journal.path, "SELECT trade_id, price_ticks FROM fills") == [(7, 100)]
    assert not journal.record_fill(1, "mm1", 7, 1, 100, 1, Decimal("0"))   # now it is one


def test_close_raises_pending_writer_errors(db):
    j = Journal(db)
    j.record_order(2, "mm1", 1, 1.5, 1, "OPEN")
    with pytest.raises(JournalError):
        j.close()
    j.close()                                                     # idempotent, nothing left to raise


def test_disk_full_every_write_is_either_committed_or_counted(journal):
    conn = journal._writer.conn                                   # writer idle: safe to configure
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 6}")
    n = 400
    for i in range(n):
        journal.record_event(i, f"mm{i}", "e", None, None, "x" * 200)
    with pytest.raises(JournalError, match="full"):
        journal.flush()
    stored = _peek(journal.path, "SELECT count(*) FROM order_events")[0][0]
    assert 0 < stored < n
    assert stored + journal.errors == n


def test_flush_times_out_while_the_database_is_locked_then_completes(journal):
    other = sqlite3.connect(journal.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")                              # hold the write lock
    journal.set_kv("k", 1)
    with pytest.raises(TimeoutError):
        journal.flush(timeout=0.2)
    other.execute("ROLLBACK")
    other.close()
    journal.flush(timeout=5)
    assert _peek(journal.path, "SELECT value FROM kv") == [(1,)]


def test_close_commits_queued_writes_and_later_writes_are_refused(db):
    j = Journal(db)
    for i in range(100):
        j.record_fill(i, "mm1", i, 1, 100, 1, Decimal("0"))
    j.close()
    assert _peek(db, "SELECT count(*) FROM fills") == [(100,)]
    with pytest.raises(RuntimeError, match="closed"):
        j.record_fill(200, "mm1", 200, 1, 100, 1, Decimal("0"))
    with pytest.raises(RuntimeError, match="closed"):
        j.flush()
    assert len(j.load(TERMINAL).fills) == 100                     # reading still works


def test_second_journal_on_the_same_file_is_refused_until_the_first_closes(db):
    j = Journal(db)
    with pytest.raises(BlockingIOError):
        Journal(db)
    j.close()
    Journal(db).close()


_CHILD = """
import sys
from decimal import Decimal
from mmcore.persistence.journal import Journal
j = Journal(sys.argv[1], sys.argv[2])
for i in range(1_000_000):
    j.record_event(i, "mm1", "noise", None, None, "not durable")
    j.record_fill(i, "mm1", i, 1, 100, 1, Decimal("0.01"), durable=True)
    print(i, flush=True)
"""


@pytest.mark.parametrize("level", ["FULL", "NORMAL"])
def test_sigkill_loses_no_fill_whose_durable_write_returned(db, level):
    child = subprocess.Popen([sys.executable, "-c", _CHILD, db, level], stdout=subprocess.PIPE, text=True)
    acked = []
    try:
        deadline = time.monotonic() + 20
        while len(acked) < 40 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acked.append(int(line))
    finally:
        os.kill(child.pid, signal.SIGKILL)
    rest = child.stdout.read()
    child.wait()
    acked += [int(x) for x in rest.splitlines(keepends=True) if x.endswith("\n")]
    assert child.returncode == -signal.SIGKILL
    assert len(acked) >= 40

    with Journal(db) as j:                                        # the dead child's lock is gone
        stored = {f.trade_id for f in j.load(TERMINAL).fills}
    assert set(acked) <= stored
    assert len(stored) < 1_000_000                                # killed mid-way


def test_null_journal_offers_the_journal_api_and_stores_nothing():
    public = {n for n in dir(Journal) if not n.startswith("_")}
    assert public <= {n for n in dir(NullJournal) if not n.startswith("_")}
    with NullJournal() as j:
        j.record_order(1, "a", 1, 10, 1, "OPEN", durable=True)
        assert j.record_fill(1, "a", 1, 1, 10, 1, Decimal(0)) is True
        assert j.record_fill(1, "a", 1, 1, 10, 1, Decimal(0)) is True
        j.flush()
        st = j.load(TERMINAL)
    assert (st.open_orders, st.fills, st.position, st.kv) == ([], [], None, {})
    assert j.known_trade_ids() == set()


# --- hostile paths and failed writes (issue 8) ---

def test_a_path_that_cannot_be_a_journal_is_refused_before_anything_is_created(tmp_path):
    from mmcore.persistence.journal import JournalPathError, JournalUnavailable
    if os.path.exists("/dev/full"):
        with pytest.raises(JournalUnavailable, match="journal /dev/full is a character device, not a regular file"):
            Journal("/dev/full")
        assert not os.path.exists("/dev/full.lock")
    with pytest.raises(JournalUnavailable, match="is a directory"):
        Journal(tmp_path)
    with pytest.raises(JournalPathError, match="empty"):
        Journal("")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database " * 20)
    with pytest.raises(JournalPathError, match="is not a SQLite database") as exc:
        Journal(notes)
    assert isinstance(exc.value, ValueError) and str(notes) in str(exc.value)
    Journal(notes.with_name("ok.db")).close()                    # the failed opens released their locks


def test_the_lock_file_names_the_holder_pid(db):
    from mmcore.persistence.journal import JournalLocked
    j = Journal(db)
    try:
        assert open(db + ".lock").read().strip() == str(os.getpid())
        with pytest.raises(JournalLocked) as exc:
            Journal(db)
        assert exc.value.pid == os.getpid() and f"pid {os.getpid()}" in str(exc.value)
        assert isinstance(exc.value, BlockingIOError)             # as before, for callers that catch it
    finally:
        j.close()


def _wait_failed(j, timeout=10.0):
    deadline = time.monotonic() + timeout
    while j.failed is None and time.monotonic() < deadline:
        time.sleep(0.005)
    return j.failed


def test_a_failed_write_sets_failed_naming_kind_table_and_client_order_id_without_a_flush(journal):
    assert journal.failed is None
    journal.record_order(1, "mm-7", 1, 100.5, 1, "OPEN")            # float price: refused by the STRICT table
    failed = _wait_failed(journal)                                   # the writer sets it; nobody flushed
    assert failed is not None and failed.startswith("order into orders (client order id mm-7")
    with pytest.raises(JournalError):
        journal.flush()
    assert journal.failed == failed                                  # stays set: it is the journal's status


def test_disk_full_sets_failed_once_with_the_first_lost_write(journal):
    conn = journal._writer.conn                                      # writer idle: safe to configure
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0] + 2}")
    for i in range(300):
        journal.record_fill(i, f"mm-{i}", i, 1, 100, 1, Decimal("0.01"))
    failed = _wait_failed(journal)
    assert failed is not None and "fill into fills (client order id mm-" in failed and "full" in failed
    with pytest.raises(JournalError):
        journal.flush()
