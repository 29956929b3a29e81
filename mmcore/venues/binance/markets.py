"""Pinned markets files: Binance's exchangeInfo as the one source of instrument truth.

A pinned file (``config/markets/<venue>.json``) is a JSON object::

    {"venue": "binance_usdm", "source": "<where the exchangeInfo came from, and when>",
     "written_by": "mmcore markets",
     "exchangeInfo": <Binance's exchangeInfo response restricted to the pinned symbols, verbatim fields>,
     "mmcore": {"BTCUSDT": {"lot_size": "0.001", "price_precision": 2, "quantity_precision": 3,
                            "max_qty": "21000000"}}}

with a ``sha256sum``-format checksum ``<venue>.json.sha256`` (``"<64 hex>  <file name>\\n"``) beside it.
``exchangeInfo`` is what Binance serves (spot ``GET /api/v3/exchangeInfo``, USDⓈ-M ``GET /fapi/v1/exchangeInfo``);
the emulator serves it as its own exchangeInfo. The ``mmcore`` section holds what exchangeInfo lacks: the
market-data quantity unit (``lot_size``: spot market data carries 8-decimal quantities, finer than the order
step), the decimals the exchange writes (``price_precision`` / ``quantity_precision``), and ``max_qty``, the
bound on any quantity in market data or reports (a book level aggregates many orders, so it is not
``LOT_SIZE.maxQty``).

Instrument fields come from the symbol's filters
(https://developers.binance.com/docs/binance-spot-api-docs/filters;
https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information):
``tick_size`` = ``PRICE_FILTER.tickSize``, ``min_price`` / ``max_price`` = ``PRICE_FILTER.minPrice`` / ``maxPrice``,
``step_size`` / ``min_order_qty`` / ``max_order_qty`` = ``LOT_SIZE.stepSize`` / ``minQty`` / ``maxQty``,
``min_notional`` = ``NOTIONAL.minNotional`` or ``MIN_NOTIONAL.minNotional`` (spot) / ``MIN_NOTIONAL.notional``
(USDⓈ-M), ``max_notional`` = ``NOTIONAL.maxNotional``, ``percent_price`` = ``PERCENT_PRICE`` (``multiplierUp`` /
``multiplierDown``) or ``PERCENT_PRICE_BY_SIDE`` (``bid…``/``ask…``).

Hostile input: the file is read only if it is a regular file of at most :data:`MAX_FILE_BYTES`, its checksum
file at most :data:`MAX_CHECKSUM_BYTES`; JSON with duplicate keys, NaN/Infinity, or nesting deeper than the
parser allows is refused; every decimal must be a plain decimal string of at most 24 digits before and after
the point; every bound must fit the compiled core's range (``max_price / tickSize`` and ``max_qty / lot_size``
at most 2**53). Every error is a :class:`MarketsError` (a ValueError, so the CLI exits 2) whose message names
the file and the field.

The ``markets`` command (:func:`fetch_exchange_info`, :func:`write_markets`) fetches exchangeInfo through ccxt,
imported lazily (about 100 MB of RSS), and writes the file with its checksum. :func:`markets_for_run` is what a
paper/live start calls: with ``venue.strict_no_rest_markets`` only the pinned file is used; otherwise the
symbols' exchangeInfo entries are fetched once at start and replace the pinned ones for that run (the pinned
file is never rewritten at run time; a fetch that fails falls back to the pinned file, logged and counted).
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import decimal
import hashlib
import json
import logging
import os
import re
import stat
from collections import Counter
from decimal import Decimal
from pathlib import Path

from mmcore.instruments import MAX_UNITS, MARKETS, Instrument, PercentPrice

__all__ = ["Markets", "MarketsError", "MarketsFetchError", "markets_command", "load_markets", "parse_markets", "fetch_exchange_info", "build_markets_doc",
           "write_markets", "markets_for_run", "pinned_markets_path", "refresh_markets", "checksum_line", "COUNTERS"]

log = logging.getLogger("mmcore.markets")

#: Largest pinned markets file read (bytes). A symbol's exchangeInfo entry is about 2-3 KB; the bundled files
#: are about 8 KB.
MAX_FILE_BYTES = 1 << 20
#: Largest checksum file read (bytes); a valid one is 64 + 2 + len(name) + 1.
MAX_CHECKSUM_BYTES = 4096
#: Most symbols one pinned file holds.
MAX_SYMBOLS = 100
WRITTEN_BY = "mmcore markets"
#: Counters of this module (``refresh_failed``, ``refresh_changed``).
COUNTERS: Counter = Counter()

_DECIMAL = re.compile(r"[0-9]{1,24}(\.[0-9]{1,24})?")
_SYMBOL = re.compile(r"[A-Z0-9]{2,20}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_EXACT = decimal.Context(prec=120, traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow])


class MarketsError(ValueError):
    """A pinned markets file (or its checksum, or an exchangeInfo answer) that cannot be used; the message names
    the file (or URL) and the field."""


class MarketsFetchError(MarketsError):
    """exchangeInfo could not be fetched (network, HTTP error, timeout, an answer that is not an exchangeInfo);
    the message names the URL."""


# ------------------------------------------------------------------------------------------------ reading

def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (opened without blocking: a FIFO is refused, not
    waited on). Raises MarketsError naming the file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise MarketsError(f"{path}: {what} missing") from None
    except OSError as exc:
        raise MarketsError(f"{path}: cannot read {what}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise MarketsError(f"{path}: {what} is not a regular file")
    with open(fd, "rb", closefd=True) as fh:
        if st.st_size > limit:
            raise MarketsError(f"{path}: {what} of {st.st_size} bytes, larger than the {limit} bytes allowed")
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise MarketsError(f"{path}: cannot read {what}: {exc.strerror}") from None
    if len(data) > limit:
        raise MarketsError(f"{path}: {what} larger than the {limit} bytes allowed")
    return data


def checksum_line(data: bytes, name: str) -> str:
    """The ``sha256sum`` line of ``data`` stored as file ``name``: ``"<hex>  <name>\\n"``."""
    return f"{hashlib.sha256(data).hexdigest()}  {name}\n"


def _check_checksum(path: Path, data: bytes) -> str:
    """Check ``<path>.sha256`` against ``data``; return the hex digest. Raises MarketsError."""
    sum_path = path.with_name(path.name + ".sha256")
    how = (f"re-create both with `python -m mmcore markets --venue ... --symbols ... --out {path}`, or, after "
           f"checking the file by hand, `sha256sum {path.name} > {sum_path.name}` in its directory")
    try:
        raw = _read_bounded(sum_path, MAX_CHECKSUM_BYTES, "checksum file")
    except MarketsError as exc:
        raise MarketsError(f"{exc}: a pinned markets file is used only with its checksum; {how}") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise MarketsError(f"{sum_path}: not a sha256sum line (not ASCII); {how}") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) != 1:
        raise MarketsError(f"{sum_path}: expected one line '<sha256 hex>  {path.name}', found {len(lines)}; {how}")
    digest, sep, name = lines[0][:64], lines[0][64:66], lines[0][66:]
    if not _HEX64.fullmatch(digest) or sep not in ("  ", " *"):
        raise MarketsError(f"{sum_path}: not a sha256sum line ('<64 hex digits>  {path.name}'); {how}")
    if name != path.name:
        raise MarketsError(f"{sum_path}: names {name[:80]!r}, not {path.name!r}; {how}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest.lower():
        raise MarketsError(f"{path}: checksum mismatch: the file's sha256 is {actual}, {sum_path.name} says "
                           f"{digest.lower()}: the pinned file changed since its checksum was written; {how}")
    return actual


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k[:60]!r}")
        out[k] = v
    return out


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _parse_json(data: bytes, where: str):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MarketsError(f"{where}: not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise MarketsError(f"{where}: not valid JSON: nested deeper than the parser allows") from None
    except ValueError as exc:           # JSONDecodeError, duplicate keys, NaN, integers of > 4300 digits
        raise MarketsError(f"{where}: not valid JSON: {str(exc)[:200]}") from None


def load_markets(path: str | Path, venue: str, *, verify: bool = True) -> "Markets":
    """Read, check and validate a pinned markets file.

    Parameters
    ----------
    path : str or Path
        The pinned file (``config/markets/binance_usdm.json``); its checksum is ``<path>.sha256``.
    venue : str
        ``binance_spot`` or ``binance_usdm``: the file's ``venue`` must be it.
    verify : bool
        Check the ``.sha256`` (default). Only the ``markets`` command reads without it (to keep the ``mmcore``
        section of a file it is about to rewrite).

    Returns
    -------
    Markets

    Raises
    ------
    MarketsError
        (a ValueError: the CLI exits 2) the file or its checksum is missing, unreadable, not a regular file, too
        large, or does not match; the JSON is invalid; a field is missing, of the wrong type, or out of range.
        The message names the file and the field.
    """
    path = Path(path)
    if venue not in MARKETS:
        raise MarketsError(f"{path}: venue {venue!r} has no pinned markets (have: {', '.join(MARKETS)})")
    data = _read_bounded(path, MAX_FILE_BYTES, "pinned markets file")
    digest = _check_checksum(path, data) if verify else hashlib.sha256(data).hexdigest()
    return parse_markets(_parse_json(data, str(path)), venue, str(path), digest)


# ------------------------------------------------------------------------------------------------ validation

def _kind(v) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)


def _plain(d: Decimal) -> Decimal:
    """``d`` without trailing fractional zeros, never in exponent form: ``"0.01000000"`` -> 0.01,
    ``"1000000.00000000"`` -> 1000000 (Binance pads spot decimals to 8 places; the value is unchanged)."""
    n = d.normalize()
    return n if n.as_tuple().exponent <= 0 else n.quantize(Decimal(1))


class _Check:
    """Field accessors that raise MarketsError naming ``<where>: <field path>``."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, field: str, problem: str):
        raise MarketsError(f"{self.where}: {field}: {problem}")

    def get(self, obj: dict, key: str, field: str, types, what: str, optional: bool = False):
        if key not in obj:
            if optional:
                return None
            self.fail(f"{field}.{key}" if field else key, f"missing (must be {what})")
        v = obj[key]
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in (types if isinstance(types, tuple)
                                                                             else (types,))):
            self.fail(f"{field}.{key}" if field else key, f"is {_kind(v)}, must be {what}")
        return v

    def text(self, obj, key, field, optional=False, limit=200):
        v = self.get(obj, key, field, str, "a string", optional)
        if v is not None and not 0 < len(v) <= limit:
            self.fail(f"{field}.{key}" if field else key, f"must be a non-empty string of at most {limit} characters")
        return v

    def dec(self, obj, key, field, optional=False) -> Decimal | None:
        v = self.get(obj, key, field, str, "a decimal string such as \"0.01\"", optional)
        if v is None:
            return None
        if not _DECIMAL.fullmatch(v):
            self.fail(f"{field}.{key}", f"{v[:40]!r} is not a plain decimal string (digits, one optional point, "
                                        f"at most 24 digits each side)")
        return _plain(Decimal(v))

    def integer(self, obj, key, field, lo, hi):
        v = self.get(obj, key, field, int, f"an integer in [{lo}, {hi}]")
        if not lo <= v <= hi:
            self.fail(f"{field}.{key}", f"{v if abs(v) < 10**20 else '<huge integer>'} out of range [{lo}, {hi}]")
        return v


def _filters(c: _Check, sym: dict, field: str) -> dict:
    flist = c.get(sym, "filters", field, list, "an array of filter objects")
    out = {}
    for i, f in enumerate(flist):
        ff = f"{field}.filters[{i}]"
        if not isinstance(f, dict):
            c.fail(ff, f"is {_kind(f)}, must be a filter object")
        ftype = c.text(f, "filterType", ff, limit=60)
        if ftype in out:
            c.fail(ff, f"second {ftype} filter")
        out[ftype] = (f, f"{field}.filters[{ftype}]")
    return out


def _percent_price(c: _Check, filters: dict) -> PercentPrice | None:
    if "PERCENT_PRICE_BY_SIDE" in filters:
        f, ff = filters["PERCENT_PRICE_BY_SIDE"]
        vals = [c.dec(f, k, ff) for k in ("bidMultiplierUp", "bidMultiplierDown", "askMultiplierUp",
                                          "askMultiplierDown")]
        mins = f.get("avgPriceMins")
    elif "PERCENT_PRICE" in filters:
        f, ff = filters["PERCENT_PRICE"]
        up, down = c.dec(f, "multiplierUp", ff), c.dec(f, "multiplierDown", ff)
        vals = [up, down, up, down]
        mins = f.get("avgPriceMins")
    else:
        return None
    bid_up, bid_down, ask_up, ask_down = vals
    if not (bid_down < 1 < bid_up and ask_down < 1 < ask_up):
        c.fail(ff, "multipliers must satisfy down < 1 < up")
    if mins is not None and (not isinstance(mins, int) or isinstance(mins, bool) or not 0 <= mins <= 10**6):
        c.fail(f"{ff}.avgPriceMins", "must be an integer in [0, 1000000]")
    return PercentPrice(bid_up, bid_down, ask_up, ask_down, mins)


def _decimals(d: Decimal) -> int:
    return max(0, -d.normalize().as_tuple().exponent)


def _instrument(c: _Check, venue: str, sym: dict, field: str, mm: dict, mfield: str) -> Instrument:
    symbol = sym["symbol"]
    base = c.text(sym, "baseAsset", field, limit=20)
    quote = c.text(sym, "quoteAsset", field, limit=20)
    if venue == "binance_usdm":
        ctype = c.text(sym, "contractType", field, limit=40)
        if ctype != "PERPETUAL":
            c.fail(f"{field}.contractType", f"{ctype!r}: mmcore trades USDⓈ-M perpetuals only (PERPETUAL)")
        tif = c.get(sym, "timeInForce", field, list, "an array of strings", optional=True)
        if tif is not None and "GTX" not in tif:
            c.fail(f"{field}.timeInForce", "has no GTX (post-only), which mmcore's quotes use")
    else:
        if "contractType" in sym:
            c.fail(f"{field}.contractType", "present: this is a futures symbol, not spot")
        types = c.get(sym, "orderTypes", field, list, "an array of strings", optional=True)
        if types is not None and "LIMIT_MAKER" not in types:
            c.fail(f"{field}.orderTypes", "has no LIMIT_MAKER (post-only), which mmcore's quotes use")
    filters = _filters(c, sym, field)
    if "PRICE_FILTER" not in filters:
        c.fail(f"{field}.filters", "no PRICE_FILTER (tick size)")
    if "LOT_SIZE" not in filters:
        c.fail(f"{field}.filters", "no LOT_SIZE (step size)")
    pf, pff = filters["PRICE_FILTER"]
    tick, min_price, max_price = c.dec(pf, "tickSize", pff), c.dec(pf, "minPrice", pff), c.dec(pf, "maxPrice", pff)
    lf, lff = filters["LOT_SIZE"]
    step, min_qty, max_order = c.dec(lf, "stepSize", lff), c.dec(lf, "minQty", lff), c.dec(lf, "maxQty", lff)
    if tick <= 0:
        c.fail(f"{pff}.tickSize", "must be > 0 (0 disables the tick rule; mmcore counts prices in ticks)")
    if max_price <= 0:
        c.fail(f"{pff}.maxPrice", "must be > 0 (0 disables the rule; mmcore needs a bound on every price)")
    if step <= 0:
        c.fail(f"{lff}.stepSize", "must be > 0")
    if max_order <= 0:
        c.fail(f"{lff}.maxQty", "must be > 0")
    min_notional, max_notional = Decimal(0), None
    if "NOTIONAL" in filters:
        nf, nff = filters["NOTIONAL"]
        min_notional = c.dec(nf, "minNotional", nff)
        max_notional = c.dec(nf, "maxNotional", nff, optional=True)
        if max_notional is not None and max_notional <= 0:
            max_notional = None                                   # 0: no maximum
    elif "MIN_NOTIONAL" in filters:
        nf, nff = filters["MIN_NOTIONAL"]
        key = "notional" if venue == "binance_usdm" else "minNotional"
        min_notional = c.dec(nf, key, nff)
    percent = _percent_price(c, filters)

    lot = c.dec(mm, "lot_size", mfield)
    pp = c.integer(mm, "price_precision", mfield, 0, 18)
    qp = c.integer(mm, "quantity_precision", mfield, 0, 18)
    max_qty = c.dec(mm, "max_qty", mfield)
    if lot <= 0:
        c.fail(f"{mfield}.lot_size", "must be > 0")
    if max_qty <= 0:
        c.fail(f"{mfield}.max_qty", "must be > 0")
    with decimal.localcontext(_EXACT):
        if step % lot != 0:
            c.fail(f"{mfield}.lot_size", f"{lot} does not divide LOT_SIZE.stepSize {step} (order sizes must be whole "
                                         f"lots)")
        if max_price // tick > MAX_UNITS:
            c.fail(f"{pff}.maxPrice", f"maxPrice / tickSize = {max_price // tick:.6g} ticks, above 2**53 (the "
                                      f"compiled core's range)")
        if max_qty // lot > MAX_UNITS:
            c.fail(f"{mfield}.max_qty", f"max_qty / lot_size = {max_qty // lot:.6g} lots, above 2**53 (the compiled "
                                        f"core's range)")
    if max_order > max_qty:
        c.fail(f"{mfield}.max_qty", f"{max_qty} is below LOT_SIZE.maxQty {max_order}")
    if min_price > max_price:
        c.fail(f"{pff}.minPrice", f"{min_price} is above maxPrice {max_price}")
    if min_qty > max_order:
        c.fail(f"{lff}.minQty", f"{min_qty} is above maxQty {max_order}")
    if _decimals(tick) > pp:
        c.fail(f"{mfield}.price_precision", f"{pp} decimals cannot write tickSize {tick}")
    if _decimals(lot) > qp:
        c.fail(f"{mfield}.quantity_precision", f"{qp} decimals cannot write lot_size {lot}")
    status = sym.get("status")
    if status != "TRADING":
        log.warning("%s: %s: status %r (not TRADING): orders will be refused by the venue", c.where, symbol, status)
    try:
        return Instrument(market=venue, symbol=symbol, base=base, quote=quote, tick_size=tick, step_size=step,
                          lot_size=lot, min_notional=min_notional, price_precision=pp, quantity_precision=qp,
                          max_price=max_price, max_qty=max_qty, max_order_qty=max_order, min_price=min_price,
                          min_order_qty=min_qty, max_notional=max_notional, percent_price=percent)
    except (ValueError, ArithmeticError) as exc:                  # every bound is checked above; kept as a net
        raise MarketsError(f"{c.where}: {field}: {exc}") from None


def parse_markets(doc, venue: str, where: str = "<markets>", sha256: str | None = None) -> "Markets":
    """Validate a parsed pinned-markets document (see the module docstring) and build its instruments.

    Raises MarketsError naming ``where`` and the field.
    """
    c = _Check(where)
    if not isinstance(doc, dict):
        c.fail("(top level)", f"is {_kind(doc)}, must be an object with venue, source, written_by, exchangeInfo, "
                              f"mmcore")
    known = {"venue", "source", "written_by", "exchangeInfo", "mmcore"}
    extra = sorted(k for k in doc if k not in known)
    if extra:
        c.fail(extra[0][:60], f"unknown field (known: {', '.join(sorted(known))})")
    file_venue = c.text(doc, "venue", "", limit=40)
    if file_venue != venue:
        c.fail("venue", f"{file_venue!r}, but this is the pinned file of {venue!r}")
    source = c.text(doc, "source", "", limit=20_000)
    written_by = c.text(doc, "written_by", "", limit=200)
    info = c.get(doc, "exchangeInfo", "", dict, "Binance's exchangeInfo object")
    mm = c.get(doc, "mmcore", "", dict, "an object of SYMBOL: {lot_size, price_precision, quantity_precision, "
                                        "max_qty}")
    syms = c.get(info, "symbols", "exchangeInfo", list, "an array of symbol objects")
    if not syms:
        c.fail("exchangeInfo.symbols", "empty: a pinned file holds at least one symbol")
    if len(syms) > MAX_SYMBOLS:
        c.fail("exchangeInfo.symbols", f"{len(syms)} symbols, more than the {MAX_SYMBOLS} allowed")
    by_symbol = {}
    for i, sym in enumerate(syms):
        f = f"exchangeInfo.symbols[{i}]"
        if not isinstance(sym, dict):
            c.fail(f, f"is {_kind(sym)}, must be a symbol object")
        name = c.text(sym, "symbol", f, limit=40)
        if not _SYMBOL.fullmatch(name):
            c.fail(f"{f}.symbol", f"{name[:40]!r} is not an exchange symbol (2-20 of A-Z, 0-9)")
        if name in by_symbol:
            c.fail(f"{f}.symbol", f"{name} appears twice")
        by_symbol[name] = sym
    for name in mm:
        if name not in by_symbol:
            c.fail(f"mmcore.{str(name)[:40]}", "has no entry in exchangeInfo.symbols")
    instruments = {}
    for name, sym in by_symbol.items():
        if name not in mm:
            c.fail(f"mmcore.{name}", "missing (every pinned symbol needs lot_size, price_precision, "
                                     "quantity_precision, max_qty)")
        entry = mm[name]
        mf = f"mmcore.{name}"
        if not isinstance(entry, dict):
            c.fail(mf, f"is {_kind(entry)}, must be an object")
        extra = sorted(k for k in entry if k not in ("lot_size", "price_precision", "quantity_precision", "max_qty"))
        if extra:
            c.fail(f"{mf}.{extra[0][:40]}", "unknown field (known: lot_size, max_qty, price_precision, "
                                            "quantity_precision)")
        instruments[name] = _instrument(c, venue, sym, f"exchangeInfo.symbols[{name}]", entry, mf)
    return Markets(path=where, venue=venue, source=source, written_by=written_by, sha256=sha256,
                   _info=info, _mmcore=mm, _instruments=instruments)


@dataclasses.dataclass(frozen=True)
class Markets:
    """A validated pinned markets file.

    Attributes
    ----------
    path : str
        Where it was read from (file path, or a description for fetched data).
    venue, source, written_by : str
    sha256 : str or None
        Hex digest of the file as read (None for a document not read from a file).
    """

    path: str
    venue: str
    source: str
    written_by: str
    sha256: str | None
    _info: dict = dataclasses.field(repr=False)
    _mmcore: dict = dataclasses.field(repr=False)
    _instruments: dict = dataclasses.field(repr=False)

    def symbols(self) -> tuple[str, ...]:
        """The pinned symbols, in the file's order."""
        return tuple(self._instruments)

    def instrument(self, symbol: str) -> Instrument:
        """The :class:`~mmcore.instruments.Instrument` of ``symbol``.

        Raises KeyError ``symbol 'X' not in <file> (have: A, B)``.
        """
        try:
            return self._instruments[symbol]
        except (KeyError, TypeError):
            raise KeyError(f"symbol {str(symbol)[:40]!r} not in {self.path} (have: "
                           f"{', '.join(self._instruments)})") from None

    def symbol_info(self, symbol: str) -> dict:
        """A copy of Binance's exchangeInfo entry of ``symbol`` (raises KeyError as :meth:`instrument`)."""
        self.instrument(symbol)
        for s in self._info["symbols"]:
            if s["symbol"] == symbol:
                return copy.deepcopy(s)
        raise KeyError(symbol)                                    # unreachable: validated one-to-one

    def mmcore_entry(self, symbol: str) -> dict:
        """A copy of the file's ``mmcore`` entry of ``symbol`` (raises KeyError as :meth:`instrument`)."""
        self.instrument(symbol)
        return dict(self._mmcore[symbol])

    def exchange_info(self) -> dict:
        """A deep copy of the pinned exchangeInfo object: what the emulator serves (it sets ``serverTime``)."""
        return copy.deepcopy(self._info)

    def document(self) -> dict:
        """The whole pinned document (a deep copy), as written to the file."""
        return {"venue": self.venue, "source": self.source, "written_by": self.written_by,
                "exchangeInfo": self.exchange_info(), "mmcore": copy.deepcopy(self._mmcore)}


# ------------------------------------------------------------------------------------------------ fetching

#: The raw exchangeInfo call of each venue (ccxt implicit API method, Binance path).
_RAW = {"binance_spot": ("publicGetExchangeInfo", "/api/v3/exchangeInfo"),
        "binance_usdm": ("fapiPublicGetExchangeInfo", "/fapi/v1/exchangeInfo")}


def _ccxt_exchange(venue: str, endpoint: str | None, timeout_ms: int):
    """A ccxt async exchange for ``venue`` (imported here: ccxt costs ~100 MB of RSS). Options keep
    ``load_markets`` off sapi/margin/currencies and other markets (research notes picows_ccxt.md §4.4);
    ``endpoint`` replaces ``urls['api']`` wholesale, every key onto that host with Binance's own paths (§4.2;
    ccxt issue #19507)."""
    from urllib.parse import urlsplit

    import ccxt.async_support as ccxt_async

    opts = {"fetchCurrencies": False, "fetchMargins": False}
    if venue == "binance_spot":
        ex = ccxt_async.binance({"enableRateLimit": False, "timeout": timeout_ms,
                                 "options": dict(opts, fetchMarkets={"types": ["spot"]})})
    else:
        ex = ccxt_async.binanceusdm({"enableRateLimit": False, "timeout": timeout_ms, "options": opts})
    if endpoint:
        base = endpoint.rstrip("/")
        ex.urls["api"] = {k: base + urlsplit(v).path for k, v in ex.urls["api"].items() if isinstance(v, str)}
    return ex


def _restrict(answer, want: list, url: str) -> tuple[dict, str]:
    """An exchangeInfo answer restricted to the symbols ``want`` (MarketsFetchError naming ``url`` otherwise)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("symbols"), list):
        raise MarketsFetchError(f"GET {url}: answer is {_kind(answer)} without a symbols array, not an exchangeInfo")
    by = {s.get("symbol"): s for s in answer["symbols"] if isinstance(s, dict)}
    missing = [s for s in want if s not in by]
    if missing:
        raise MarketsFetchError(f"GET {url}: symbol(s) {', '.join(missing)} not in the exchangeInfo answer")
    info = {k: v for k, v in answer.items() if k not in ("symbols", "assets")}
    info["symbols"] = [by[s] for s in want]
    return info, url


async def fetch_exchange_info(venue: str, symbols, endpoint: str | None = None,
                              timeout_s: float = 10.0) -> tuple[dict, str]:
    """Fetch Binance's exchangeInfo through ccxt and restrict it to ``symbols`` (verbatim entries).

    Spot asks for just the symbols (``GET /api/v3/exchangeInfo?symbols=[...]``); USDⓈ-M has no symbol
    parameter (``GET /fapi/v1/exchangeInfo``) and is restricted here. Every top-level field but ``symbols`` is
    kept (``timezone``, ``serverTime``, ``rateLimits``, ``exchangeFilters``, ...; USDⓈ-M ``assets`` are dropped).

    Returns
    -------
    (exchange_info, url)
        The restricted object and the URL it came from.

    Raises
    ------
    MarketsError
        The request failed (network, HTTP error, timeout: ccxt's message, sanitized), the answer is not an
        exchangeInfo object, or a symbol is missing from it (the message names the URL).
    """
    from mmcore.venues.ratelimit import sanitize_message

    method, path = _RAW[venue]
    want = list(symbols)
    ex = _ccxt_exchange(venue, endpoint, int(timeout_s * 1000))
    params = {"symbols": json.dumps(want, separators=(",", ":"))} if venue == "binance_spot" else {}
    base = (ex.urls["api"]["public"] if venue == "binance_spot" else ex.urls["api"]["fapiPublic"])
    url = base.rsplit("/", 2)[0] + path
    try:
        try:
            answer = await getattr(ex, method)(params)
        finally:
            await ex.close()
    except Exception as exc:                        # ccxt raises its own hierarchy and aiohttp errors
        raise MarketsFetchError(f"GET {url}: {type(exc).__name__}: {sanitize_message(str(exc), 300)}") from None
    url = getattr(ex, "last_request_url", None) or url
    return _restrict(answer, want, url)


def _default_mmcore(venue: str, sym: dict) -> dict:
    """The ``mmcore`` entry of a symbol new to the file (exchangeInfo lacks these; documented choices):

    - ``quantity_precision`` / ``price_precision``: spot ``baseAssetPrecision`` / ``quoteAssetPrecision`` (spot
      market data is written with these decimals, e.g. ``"61837.63000000"``, ``"25.42618900"``); USDⓈ-M
      ``quantityPrecision`` / ``pricePrecision`` (``"61800.20"``, ``"2.507"``);
    - ``lot_size`` = ``10**-quantity_precision``;
    - ``max_qty`` = the largest power of ten not above ``min(10**4 * LOT_SIZE.maxQty, 2**53 * lot_size)``: ten
      thousand maximum-size orders at one level, within the compiled core's range.
    """
    c = _Check("exchangeInfo")
    f = f"symbols[{sym.get('symbol')}]"
    if venue == "binance_spot":
        qp = c.integer(sym, "baseAssetPrecision", f, 0, 18)
        pp = c.integer(sym, "quoteAssetPrecision", f, 0, 18) if "quoteAssetPrecision" in sym \
            else c.integer(sym, "quotePrecision", f, 0, 18)
    else:
        qp = c.integer(sym, "quantityPrecision", f, 0, 18)
        pp = c.integer(sym, "pricePrecision", f, 0, 18)
    lot = Decimal(1).scaleb(-qp)
    filters = _filters(c, sym, f)
    if "LOT_SIZE" not in filters:
        c.fail(f"{f}.filters", "no LOT_SIZE (step size)")
    max_order = c.dec(filters["LOT_SIZE"][0], "maxQty", filters["LOT_SIZE"][1])
    cap = min(max_order * 10_000, lot * MAX_UNITS)
    k = max(0, len(str(int(cap))) - 1) if cap >= 1 else 0
    max_qty = Decimal(10) ** k
    return {"lot_size": f"{lot:f}", "price_precision": pp, "quantity_precision": qp, "max_qty": f"{max_qty:f}"}


def build_markets_doc(venue: str, info: dict, source: str, previous: "Markets | None" = None) -> dict:
    """The pinned document for ``info`` (restricted exchangeInfo): the ``mmcore`` entry of each symbol is kept
    from ``previous`` (the file being rewritten) when it has one, else :func:`_default_mmcore`."""
    mm = {}
    for sym in info["symbols"]:
        name = sym["symbol"]
        if previous is not None and name in previous.symbols():
            mm[name] = previous.mmcore_entry(name)
        else:
            mm[name] = _default_mmcore(venue, sym)
    return {"venue": venue, "source": source, "written_by": WRITTEN_BY, "exchangeInfo": info, "mmcore": mm}


def _dump(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_markets(doc: dict, out: str | Path) -> "Markets":
    """Validate ``doc`` and write it to ``out`` with ``out.sha256`` beside it (each through a temporary file and
    a rename; the JSON first, so a crash between the two leaves a mismatch that stops the next start, never a
    file that passes with the old checksum). Returns the Markets as read back. Raises MarketsError (nothing is
    written when ``doc`` is invalid) or OSError."""
    out = Path(out)
    data = _dump(doc)
    parse_markets(json.loads(data), doc.get("venue"), str(out))           # refuse before writing anything
    sums = checksum_line(data, out.name).encode("ascii")
    for target, payload in ((out, data), (out.with_name(out.name + ".sha256"), sums)):
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    return load_markets(out, doc["venue"])


def _now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


#: Largest exchangeInfo body read at a run's start (USDⓈ-M's whole answer is ~1 MB).
MAX_EXCHANGE_INFO_BYTES = 16 << 20


async def fetch_exchange_info_rest(venue: str, symbols, endpoint: str | None = None,
                                   timeout_s: float = 10.0) -> tuple[dict, str]:
    """:func:`fetch_exchange_info` over a plain aiohttp GET instead of ccxt: for the start-time refresh of a
    paper or live run, which then never imports ccxt (~77 MB of RSS, README *Measured*). Same answer, same
    restriction to ``symbols``, same errors (MarketsError naming the URL)."""
    import aiohttp

    from mmcore.venues.binance.urls import urls_for
    from mmcore.venues.ratelimit import sanitize_message

    _, path = _RAW[venue]
    want = list(symbols)
    url = urls_for(venue, False, endpoint).rest_url(path)
    params = {"symbols": json.dumps(want, separators=(",", ":"))} if venue == "binance_spot" else {}
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                body = await resp.content.read(MAX_EXCHANGE_INFO_BYTES + 1)
                status = resp.status
    except Exception as exc:                        # noqa: BLE001 - aiohttp / OS / timeout errors
        raise MarketsFetchError(f"GET {url}: {type(exc).__name__}: {sanitize_message(str(exc), 300)}") from None
    if len(body) > MAX_EXCHANGE_INFO_BYTES:
        raise MarketsFetchError(f"GET {url}: answer larger than {MAX_EXCHANGE_INFO_BYTES} bytes")
    if status != 200:
        raise MarketsFetchError(f"GET {url}: HTTP {status} {sanitize_message(body[:200].decode('utf-8', 'replace'))}")
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise MarketsFetchError(f"GET {url}: not JSON ({str(exc)[:100]})") from None
    return _restrict(answer, want, url)


async def markets_command(venue: str, symbols, out: str | Path, endpoint: str | None = None,
                          timeout_s: float = 10.0) -> "Markets":
    """``python -m mmcore markets``: fetch, restrict, keep the previous file's ``mmcore`` entries, write."""
    out = Path(out)
    previous = None
    if out.exists():
        try:
            previous = load_markets(out, venue, verify=False)
        except MarketsError as exc:
            log.warning("%s: not reused (%s); mmcore entries get their defaults", out, exc)
    info, url = await fetch_exchange_info(venue, symbols, endpoint, timeout_s)
    import ccxt
    source = f"GET {url} via ccxt {ccxt.__version__} at {_now_utc()} (written by `mmcore markets`)"
    return write_markets(build_markets_doc(venue, info, source, previous), out)


async def refresh_markets(pinned: Markets, symbols, endpoint: str | None = None,
                          timeout_s: float = 10.0) -> Markets:
    """The pinned markets with the ``symbols``' exchangeInfo entries fetched now (the ``mmcore`` entries stay
    the pinned ones). Each changed filter is logged. On any failure (network, a bad answer, entries that do not
    validate) the pinned markets are returned, logged and counted ``refresh_failed``. The pinned file is not
    touched."""
    try:
        info, url = await fetch_exchange_info_rest(pinned.venue, symbols, endpoint, timeout_s)
        base = pinned.exchange_info()
        fresh = {s["symbol"]: s for s in info["symbols"]}
        base["symbols"] = [fresh.get(s["symbol"], s) for s in base["symbols"]]
        doc = pinned.document()
        doc["exchangeInfo"] = base
        doc["source"] = f"GET {url} at {_now_utc()} (refreshed at start; pinned: {pinned.path})"
        markets = parse_markets(doc, pinned.venue, f"exchangeInfo from {url}")
    except MarketsError as exc:
        COUNTERS["refresh_failed"] += 1
        log.warning("exchangeInfo refresh failed, using the pinned file %s: %s", pinned.path, exc)
        return pinned
    for s in symbols:
        old, new = pinned.symbol_info(s).get("filters"), markets.symbol_info(s).get("filters")
        if old != new:
            COUNTERS["refresh_changed"] += 1
            log.warning("%s: exchangeInfo filters differ from the pinned file %s; using the fetched ones for this "
                        "run (re-pin with `python -m mmcore markets`): pinned %s, now %s", s, pinned.path,
                        json.dumps(old)[:600], json.dumps(new)[:600])
    return markets


def pinned_markets_path(config, venue: str) -> Path:
    """The pinned markets file of ``venue`` for a run: ``venue.markets_file`` when it is set and ``venue`` is
    ``venue.name``, else ``<data.markets>/<venue>.json`` (default ``config/markets/<venue>.json``)."""
    given = config.get("venue.markets_file")
    if given is not None and config.get("venue.name") == venue:
        return config.resolve_path(given)
    return config.resolve_path(config.get("data.markets")) / f"{venue}.json"


async def markets_for_run(path: str | Path, venue: str, symbols, strict: bool, endpoint: str | None = None,
                          timeout_s: float = 10.0) -> Markets:
    """The markets a paper/live run starts with.

    Loads and checks the pinned file (a missing or mismatched checksum raises MarketsError: exit 2); every
    symbol must be in it (KeyError otherwise, naming the file). With ``strict`` (``venue.strict_no_rest_markets``)
    nothing is fetched; otherwise :func:`refresh_markets` fetches the symbols' entries once.
    """
    pinned = load_markets(path, venue)
    for s in symbols:
        pinned.instrument(s)
    if strict:
        log.info("venue.strict_no_rest_markets: using the pinned %s (sha256 %s) only", pinned.path, pinned.sha256)
        return pinned
    return await refresh_markets(pinned, symbols, endpoint, timeout_s)
