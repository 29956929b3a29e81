"""Fuzzing the venue edge and the compiled book (issue 8, "Keep finding them").

(a) The line decoder on arbitrary bytes and on mutated real lines of every bundled recording (digits, signs,
    lengths, ids, brackets changed; numbers replaced by extremes at every integer boundary): it returns an event
    or None, or raises ``MalformedLine``; nothing else. Every event it returns is within the instrument's bounds.
(b) The book's apply path (``load_snapshot`` / ``apply_diff``) on arbitrary event sequences with extreme values,
    and on the real USDⓈ-M stream with mutated lines: the compiled book raises only ValueError, exactly when the
    pure-Python reference does, agrees with it after every call, and keeps its invariants (levels sorted strictly
    best-first per side, quantities > 0, prices within bounds, no crossing unless the reference crossed too).

The mutated lines are synthetic, derived from the real recordings in ``data/``.

Budget: bounded for CI (the whole file takes well under a minute). Run longer with a larger scale, e.g.

    MMCORE_FUZZ_SCALE=50 .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_fuzz_core.py

(every ``max_examples`` is multiplied by ``MMCORE_FUZZ_SCALE``; add ``--hypothesis-seed=N`` to replay a run).
"""
import gzip
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmcore.instruments import load_instrument
from mmcore.reference import book as ref
from mmcore.venues.binance.recording import BinanceDecoder, MalformedLine
from mmcore_ext.book import ASK, BID, SYNC_SPOT, SYNC_USDM, L2Book
from mmcore_ext.events import BookTicker, DepthDiff, DepthSnapshot, Trade

from datafiles import SPOT_FILE, USDM_2023_FILE, USDM_FILE

SCALE = max(1, int(os.environ.get("MMCORE_FUZZ_SCALE", "1")))
HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def fuzz_settings(n):
    return settings(max_examples=n * SCALE, deadline=None, suppress_health_check=HEALTH, print_blob=True)


INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
MAXP = MAXQ = 2**53
MAXID = 2**62

# Integer boundaries, as decimal text: 0, +-1, 2**31, 2**53, 2**62, 2**63 - 1, 2**63, 2**64, 10**400 and neighbours.
BOUNDARIES = [0, 1, 2, 2**31 - 1, 2**31, 2**32, 2**53 - 1, 2**53, 2**53 + 1, 2**62 - 1, 2**62, 2**62 + 1,
              2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**19, 10**400]
EXTREME_TEXT = sorted({sign + str(v) + frac for v in BOUNDARIES for sign in ("", "-", "+")
                       for frac in ("", ".0", ".1", ".5", ".000", ".00000001", ".999999999999")}
                      | {"1e400", "-1e400", "1e18", "NaN", "Infinity", "-0", "0.", ".5", "", "-", "."})
# The ones that are valid JSON numbers (for bare, unquoted fields such as ids and times).
JSON_NUMBERS = [t for t in EXTREME_TEXT if re.fullmatch(r"-?(0|[1-9]\d*)(\.\d+)?(e\d+)?", t)]


# ---------------------------------------------------------------------------------------------------- (a) decoder

def _seed_lines():
    """Real lines of every bundled recording: a spread of each message kind, and the snapshot line."""
    seeds = []
    for path in (USDM_FILE, SPOT_FILE, USDM_2023_FILE):
        kinds = {}
        with gzip.open(path, "rb") as fh:
            for i, raw in enumerate(fh):
                if i >= 3000:
                    break
                m = re.search(rb'"e":"(\w+)"', raw[:200])
                kind = m.group(1) if m else (b"snapshot" if b"lastUpdateId" in raw[:200] else b"other")
                if len(kinds.setdefault(kind, [])) < 6:
                    kinds[kind].append(raw.rstrip(b"\n"))
        for group in kinds.values():
            seeds.extend(group)
    return seeds


SEEDS = _seed_lines()
USDM = load_instrument("binance_usdm", "BTCUSDT")
SPOT = load_instrument("binance_spot", "BTCUSDT")
DECODERS = [(BinanceDecoder(USDM), USDM), (BinanceDecoder(SPOT), SPOT)]
NUMBER = re.compile(rb"-?\d+(?:\.\d+)?")
STRUCTURAL = [b"[", b"]", b"{", b"}", b'"', b":", b",", b" ", b"\\", b"\x00", b"\xff", b"null", b"true", b"[]"]


@st.composite
def mutated_line(draw, seed=None):
    """A real line (``seed``, or one of SEEDS) with 1-4 mutations."""
    line = bytearray(draw(st.sampled_from(SEEDS)) if seed is None else seed)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 10))
        start = line.find(b" ") + 1                        # numbers of the JSON (the timestamp is kind 10)
        numbers = list(NUMBER.finditer(line, start)) if start > 0 else []
        if kind <= 5 and numbers:          # a number -> an extreme value (quoted or bare, as it was or not)
            m = numbers[draw(st.integers(0, len(numbers) - 1))]
            a, b = m.span()
            quoted = line[a - 1:a] == b'"' and line[b:b + 1] == b'"'
            new = draw(st.sampled_from(EXTREME_TEXT if quoted or draw(st.integers(0, 4)) == 0
                                       else JSON_NUMBERS)).encode()
            if quoted and draw(st.booleans()):
                a, b = a - 1, b + 1                         # unquote a decimal string / quote an integer
                new = new if draw(st.booleans()) else b'"' + new + b'"'
            line[a:b] = new
        elif kind == 6 and numbers:        # flip a sign / change one digit
            m = numbers[draw(st.integers(0, len(numbers) - 1))]
            a, b = m.span()
            if draw(st.booleans()):
                line[a:b] = line[a + 1:b] if line[a:a + 1] == b"-" else b"-" + line[a:b]
            else:
                k = draw(st.integers(a, b - 1))
                if line[k:k + 1] != b"." and line[k:k + 1] != b"-":
                    line[k:k + 1] = str(draw(st.integers(0, 9))).encode()
        elif kind == 7 and numbers:        # swap two numbers (U and u, price and quantity, ...)
            i, j = sorted(draw(st.lists(st.integers(0, len(numbers) - 1), min_size=2, max_size=2)))
            (a, b), (c, d) = numbers[i].span(), numbers[j].span()
            if b <= c:
                line[a:d] = line[c:d] + line[b:c] + line[a:b]
        elif kind == 8 and line:           # structural damage: a bracket, quote, colon, comma or byte replaced
            k = draw(st.integers(0, len(line) - 1))
            line[k:k + 1] = draw(st.sampled_from(STRUCTURAL))
        elif kind == 9 and line:           # cut or repeat a slice (lengths)
            a = draw(st.integers(0, len(line) - 1))
            b = draw(st.integers(a, min(len(line), a + 64)))
            line[a:b] = b"" if draw(st.booleans()) else line[a:b] * 2
        elif line:                         # truncate, or a longer/shorter local timestamp
            if draw(st.booleans()):
                line = line[:draw(st.integers(0, len(line)))]
            else:
                sp = line.find(b" ")
                if sp > 0:
                    line[:sp] = line[:draw(st.integers(0, sp))] + draw(st.sampled_from([b"", b"0", b"9" * 3]))
    return bytes(line)


def check_decode(decoder, inst, raw):
    """Decode ``raw``: an event within the instrument's bounds, None, or MalformedLine; anything else fails."""
    try:
        ev = decoder.decode(raw)
    except MalformedLine:
        return None
    maxp, maxq = inst.max_price_ticks, inst.max_qty_lots
    if ev is None:
        return None
    assert 0 <= ev.ts_local_ns <= INT64_MAX and 0 <= ev.ts_event_ns <= INT64_MAX
    if type(ev) in (DepthDiff, DepthSnapshot):
        for px, q in ev.bids + ev.asks:
            assert 1 <= px <= maxp and 0 <= q <= maxq, (px, q)
        if type(ev) is DepthDiff:
            assert 0 <= ev.first_update_id <= ev.final_update_id <= MAXID
            assert ev.prev_final_update_id == -1 or 0 <= ev.prev_final_update_id <= MAXID
        else:
            assert 0 <= ev.last_update_id <= MAXID
    elif type(ev) is Trade:
        assert 1 <= ev.price <= maxp and 1 <= ev.qty <= maxq and 0 <= ev.trade_id <= MAXID and ev.side in (1, -1)
    else:
        assert type(ev) is BookTicker
        assert 1 <= ev.bid_px <= maxp and 1 <= ev.ask_px <= maxp and 0 <= ev.bid_qty <= maxq
        assert 0 <= ev.ask_qty <= maxq and 0 <= ev.update_id <= MAXID
    return ev


def test_every_seed_line_decodes_cleanly():
    decoded = 0
    for raw in SEEDS:
        for decoder, inst in DECODERS:
            decoded += check_decode(decoder, inst, raw) is not None
    assert decoded >= len(SEEDS) // 2         # each real line decodes with its own market's instrument


@fuzz_settings(400)
@given(raw=st.binary(max_size=300))
def test_decoder_on_arbitrary_bytes_raises_only_malformed_line(raw):
    for decoder, inst in DECODERS:
        check_decode(decoder, inst, raw)
        check_decode(decoder, inst, b"1723161255030314667 " + raw)


JSON = st.recursive(st.none() | st.booleans() | st.integers(INT64_MIN * 4, INT64_MAX * 4)
                    | st.sampled_from(BOUNDARIES) | st.floats() | st.text(max_size=12)
                    | st.sampled_from(EXTREME_TEXT),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4), kids, max_size=4),
                    max_leaves=12)
FIELDS = {"e": st.sampled_from(["depthUpdate", "trade", "bookTicker", "markPriceUpdate"]) | JSON,
          "s": st.sampled_from(["BTCUSDT", "ETHUSDT"]), "E": JSON, "U": JSON, "u": JSON, "pu": JSON, "t": JSON,
          "p": JSON, "q": JSON, "m": JSON, "b": JSON, "a": JSON, "B": JSON, "A": JSON}


@fuzz_settings(200)
@given(data=st.fixed_dictionaries({}, optional=FIELDS), snapshot=st.booleans(),
       levels=st.lists(st.lists(st.sampled_from(EXTREME_TEXT) | st.just("61800.20"), max_size=3), max_size=4))
def test_decoder_on_frames_with_arbitrary_field_values_raises_only_malformed_line(data, snapshot, levels):
    import orjson
    if snapshot:
        msg = {"lastUpdateId": data.get("u", 5), "E": data.get("E"), "bids": levels, "asks": data.get("a", [])}
    else:
        msg = {"stream": "x", "data": {**data, **({"b": levels} if levels else {})}}
    try:
        body = orjson.dumps(msg)
    except (TypeError, orjson.JSONEncodeError):     # integers beyond 64 bits, NaN keys: not expressible by orjson
        body = repr(msg).encode()
    for decoder, inst in DECODERS:
        check_decode(decoder, inst, b"1723161255030314667 " + body)


@fuzz_settings(800)
@given(raw=mutated_line())
def test_decoder_on_mutated_real_lines_raises_only_malformed_line(raw):
    for decoder, inst in DECODERS:
        check_decode(decoder, inst, raw)


# ---------------------------------------------------------------------------------------------------- (b) book

EXTREME_PX = [INT64_MIN, -2**62, -1, 0, 1, 2, MAXP - 1, MAXP, MAXP + 1, 2**62, INT64_MAX]
EXTREME_QTY = [INT64_MIN, -1, 0, 1, MAXQ - 1, MAXQ, MAXQ + 1, INT64_MAX]
EXTREME_ID = [INT64_MIN, -MAXID - 1, -MAXID, -1, 0, 1, MAXID - 1, MAXID, MAXID + 1, INT64_MAX]


def price_st(base):
    return st.one_of(st.integers(max(1, base - 30), base + 30), st.integers(max(1, base - 5000), base + 5000),
                     st.sampled_from(EXTREME_PX), st.integers(MAXP - 40, MAXP))


qty_st = st.one_of(st.integers(0, 9), st.sampled_from(EXTREME_QTY))


def invariants(book):
    bids, asks = book.levels(BID), book.levels(ASK)
    bp, ap = [p for p, _ in bids], [p for p, _ in asks]
    assert bp == sorted(set(bp), reverse=True) and ap == sorted(set(ap))         # strictly best-first
    assert all(0 < q <= MAXQ for _, q in bids + asks)
    assert all(1 <= p <= MAXP for p in bp + ap)
    assert (book.n_levels(BID), book.n_levels(ASK)) == (len(bids), len(asks))
    if bids and asks:
        assert book.is_crossed() == (bp[0] >= ap[0])
        assert book.mid_x2() == bp[0] + ap[0] and book.spread() == ap[0] - bp[0]


def observed(book):
    probe = [p for p, _ in book.levels(BID, 3) + book.levels(ASK, 3)] + [0, 1, MAXP, INT64_MAX, INT64_MIN]
    return {
        "state": book.state, "last_update_id": book.last_update_id, "applied": book.applied,
        "buffered": book.buffered, "stale": book.stale, "stale_snapshots": book.stale_snapshots, "gaps": book.gaps,
        "crossed": book.crossed, "pending": book.pending, "bids": book.levels(BID), "asks": book.levels(ASK),
        "best": (book.best_bid_px(), book.best_bid_qty(), book.best_ask_px(), book.best_ask_qty()),
        "mid_x2": book.mid_x2(), "spread": book.spread(), "is_crossed": book.is_crossed(),
        "depth": [(book.depth_qty(BID, k), book.depth_qty(ASK, k)) for k in (1, 3, 10**6)],
        "qty_at": [(book.qty_at(BID, p), book.qty_at(ASK, p)) for p in probe],
    }


def outcome(call):
    try:
        return call()
    except ValueError:
        return ValueError


@fuzz_settings(120)
@given(data=st.data(), rule=st.sampled_from([SYNC_SPOT, SYNC_USDM]), window=st.sampled_from([64, 128, 32768]),
       base=st.sampled_from([100, 618_000, MAXP - 100]))
def test_book_apply_path_with_extreme_values_matches_reference_and_keeps_invariants(data, rule, window, base):
    book, reference = L2Book(rule, max_pending=8, window_ticks=window), ref.ReferenceL2Book(rule, max_pending=8)
    cur = data.draw(st.integers(0, 50) | st.just(MAXID - 20))
    for step in range(data.draw(st.integers(1, 20))):
        if data.draw(st.integers(0, 9)) < 2:
            last = data.draw(st.sampled_from(EXTREME_ID) | st.integers(max(-MAXID, cur - 5), min(MAXID, cur + 3)))
            bids = data.draw(st.lists(st.tuples(price_st(base), qty_st), max_size=6))
            asks = data.draw(st.lists(st.tuples(price_st(base + 40), qty_st), max_size=6))
            ev = DepthSnapshot.from_ticks(last, bids, asks, ts_local_ns=step)
            results = [outcome(lambda b=b: b.load_snapshot(ev)) for b in (book, reference)]
        else:
            if data.draw(st.integers(0, 4)):
                U = min(cur + 1, MAXID)
                u = min(U + data.draw(st.integers(0, 3)), MAXID)
                pu = cur
            else:
                U, u, pu = (data.draw(st.sampled_from(EXTREME_ID) | st.integers(cur - 4, cur + 4)) for _ in range(3))
            cur = max(cur, min(u, MAXID))
            bids = data.draw(st.lists(st.tuples(price_st(base), qty_st), max_size=6))
            asks = data.draw(st.lists(st.tuples(price_st(base + 40), qty_st), max_size=6))
            ev = DepthDiff.from_ticks(U, u, bids, asks, prev_final_update_id=pu, ts_local_ns=step)
            results = [outcome(lambda b=b: b.apply_diff(ev)) for b in (book, reference)]
        assert results[0] == results[1]
        invariants(book)
        assert observed(book) == observed(reference)
        assert book.microprice() == pytest.approx(reference.microprice(), rel=1e-12, abs=1e-9)


def _real_usdm(n=400):
    with gzip.open(USDM_FILE, "rb") as fh:
        return [raw.rstrip(b"\n") for _, raw in zip(range(n), fh)]


REAL_USDM = _real_usdm()


@fuzz_settings(40)
@given(data=st.data())
def test_real_stream_with_mutated_lines_through_decoder_and_both_books(data):
    # Synthetic: the first 400 real USDⓈ-M lines (snapshot on line 55) with up to 4 lines mutated or duplicated.
    lines = list(REAL_USDM)
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        if data.draw(st.integers(0, 3)) == 0:
            lines.insert(data.draw(st.integers(0, len(lines))), lines[i])     # a duplicated line, anywhere
        else:
            lines[i] = data.draw(mutated_line(lines[i]))
    decoder = BinanceDecoder(USDM)
    book, reference = L2Book(SYNC_USDM, window_ticks=256), ref.ReferenceL2Book(SYNC_USDM)
    for raw in lines:
        ev = check_decode(decoder, USDM, raw)
        if type(ev) is DepthDiff:
            assert book.apply_diff(ev) == reference.apply_diff(ev)
        elif type(ev) is DepthSnapshot:
            assert book.load_snapshot(ev) == reference.load_snapshot(ev)
        else:
            continue
        invariants(book)
    assert observed(book) == observed(reference)

