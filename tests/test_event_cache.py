"""The decoded-event cache (mmcore.runners.event_cache, mmcore_ext.event_cache): a replay from the cache gives the
identical report (timing keys aside) on the bundled real recordings; a stale cache (the source changed) or a
damaged one is rebuilt, never used; a damaged source is not cached; hostile cache files are refused."""
import asyncio
import json
import shutil

import numpy as np
import pytest

from mmcore.config import load_config
from mmcore.runners import event_cache as ec
from mmcore.runners.replay import build_session, run_session, summarize
from mmcore.venues.binance.recording import DataFileError

from datafiles import SPOT_FILE, USDM_FILE

TIMING = ("wall_s", "events_per_s", "latency_us", "latency_with_parse_us")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCORE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def report(path, cache, *sets):
    s = build_session(load_config(overrides=list(sets)), str(path), cache=cache)
    asyncio.run(run_session(s))
    out = summarize(s)
    for k in TIMING:
        out.pop(k)
    return json.dumps(out, sort_keys=True, default=str), s


@pytest.mark.parametrize("path, sets", [(USDM_FILE, ()), (SPOT_FILE, ()), (USDM_FILE, ("strategy.model=ladder",))])
def test_replay_from_the_cache_gives_the_identical_report(path, sets):
    raw, _ = report(path, False, *sets)
    first, s1 = report(path, True, *sets)          # builds the cache
    again, s2 = report(path, True, *sets)          # reads it
    assert raw == first == again
    assert s2.cache is not None and s2.cache.events == s2.events


def test_a_stale_cache_is_rebuilt_and_a_damaged_one_replaced(tmp_path, cache_dir):
    src = tmp_path / "usdm_btcusdt_20240808.gz"
    shutil.copyfile(USDM_FILE, src)
    s = build_session(load_config(), str(src))
    cached, built = ec.load_or_build(src, s.reader)
    assert built and cached.header["source_sha256"] == ec.source_sha256(src)
    assert ec.load_or_build(src, s.reader)[1] is False                      # up to date: used
    data = bytearray(src.read_bytes())                                      # same size, other content
    data[100] ^= 1
    src.write_bytes(bytes(data))
    assert ec.stale_reason(ec.open_cache(cached.path), src, s.reader.instrument) == "the source's content hash changed"
    shutil.copyfile(USDM_FILE, src)
    assert ec.load_or_build(src, s.reader)[1] is False
    cached.path.write_bytes(cached.path.read_bytes()[:-8])                  # truncated cache
    with pytest.raises(ec.CacheError, match="do not match the file size"):
        ec.open_cache(cached.path)
    fresh, built = ec.load_or_build(src, s.reader)
    assert built and fresh.events == cached.events


def test_hostile_cache_files_are_refused(tmp_path):
    s = build_session(load_config(), str(USDM_FILE))
    path = ec.build(USDM_FILE, s.reader, tmp_path / "c.mmcache")
    good = path.read_bytes()
    for bad, why in ((b"XXXXXXXX" + good[8:], "not an mmcore event cache"),
                     (good[:8] + (2 ** 40).to_bytes(8, "little") + good[16:], "header length"),
                     (good[:16] + b"x" + good[17:], "not JSON"), (b"", "not an mmcore")):
        path.write_bytes(bad)
        with pytest.raises(ec.CacheError, match=why):
            ec.open_cache(path)
    # a record whose kind or level counts lie: refused while reading, never read out of bounds
    path.write_bytes(good)
    c = ec.open_cache(path)
    rec = np.array(c.records)
    for word, value, why in ((0, 9, "unknown kind"), (6, 10 ** 9, "do not fit"), (7, -1, "do not fit")):
        r = rec.copy()
        first_depth = int(np.flatnonzero(r[0::8] <= 2)[0]) * 8
        r[first_depth + word] = value
        with pytest.raises(ValueError, match=why):
            list(ec.EventStream(r, np.array(c.levels)))
    t = rec.copy()
    first_trade = int(np.flatnonzero(t[0::8] == 3)[0]) * 8
    t[first_trade + 4] = 0                                                   # a trade at price 0
    with pytest.raises(ValueError, match="bounds"):
        list(ec.EventStream(t, np.array(c.levels)))


def test_a_damaged_source_is_not_cached(tmp_path, cache_dir):
    src = tmp_path / "usdm_btcusdt_20240808.gz"
    src.write_bytes(USDM_FILE.read_bytes()[:200_000])
    s = build_session(load_config(), str(src))
    with pytest.raises(DataFileError):
        ec.load_or_build(src, s.reader)
    assert not list(cache_dir.glob("*.mmcache"))


def test_cache_command_builds_then_reports_up_to_date(cache_dir):
    import subprocess
    import sys
    from datafiles import ROOT
    env = {**__import__("os").environ, "MMCORE_CACHE_DIR": str(cache_dir)}
    outs = [subprocess.run([sys.executable, "-m", "mmcore", "cache", str(USDM_FILE)], cwd=ROOT, capture_output=True,
                           text=True, timeout=120, env=env) for _ in range(2)]
    assert all(o.returncode == 0 for o in outs), outs[0].stderr[-2000:]
    assert "93954 events" in outs[0].stdout and "built" in outs[0].stdout and "up to date" in outs[1].stdout
