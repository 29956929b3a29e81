"""Binance's error answers, in one place: ``BinanceError(code, msg, status)`` and the exact texts.

Body ``{"code": -1121, "msg": "Invalid symbol."}`` on REST (HTTP ``status``), ``{"id", "status", "error": {...}}`` on
the WebSocket API. Codes and messages: spot errors.md (binance/binance-spot-api-docs, research notes [S-ERR]),
USDⓈ-M https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code ([UM-ERR]); HTTP statuses of
-1022 (400), -2014/-2015 (401) as measured by [MAXT] (research notes /work/research/binance_wire.md §5.3, §6).
"""
from __future__ import annotations


class BinanceError(Exception):
    """An error answer. ``code`` (negative int), ``msg`` (Binance's text), ``status`` (HTTP-like status), optional
    ``data`` (extra object in the WS API error, e.g. ``retryAfter``) and ``headers`` (REST, e.g. Retry-After)."""

    def __init__(self, code: int, msg: str, status: int = 400, data: dict | None = None,
                 headers: dict | None = None):
        super().__init__(f"{code} {msg}")
        self.code, self.msg, self.status, self.data, self.headers = code, msg, status, data, headers or {}

    def body(self) -> dict:
        out = {"code": self.code, "msg": self.msg}
        if self.data is not None:
            out["data"] = self.data
        return out


# --- texts (exact, [S-ERR] / [UM-ERR]) ---
UNKNOWN = (-1000, "An unknown error occured while processing the request.")
INTERNAL = (-1001, "Internal error; unable to process your request. Please try again.")
TOO_MANY_WEIGHT = "Too much request weight used; current limit is {limit} request weight per {interval}. " \
                  "Please use WebSocket Streams for live updates to avoid polling the API."
BANNED = "Way too much request weight used; IP banned until {until}. Please use WebSocket Streams for live updates " \
         "to avoid bans."
TOO_MANY_ORDERS = "Too many new orders; current limit is {limit} orders per {interval}."
TS_OUTSIDE = (-1021, "Timestamp for this request is outside of the recvWindow.")
TS_AHEAD = (-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
BAD_SIGNATURE = (-1022, "Signature for this request is not valid.")
DUPLICATE_PARAM = (-1101, "Duplicate values for a parameter detected.")
BAD_RECV_WINDOW = (-1131, "recvWindow must be less than 60000")
BAD_SYMBOL = (-1121, "Invalid symbol.")
BAD_LISTEN_KEY = (-1125, "This listenKey does not exist.")
BAD_API_KEY_FMT = (-2014, "API-key format invalid.")
REJECTED_KEY = (-2015, "Invalid API-key, IP, or permissions for action.")
WOULD_TAKE = (-2010, "Order would immediately match and take.")
INSUFFICIENT = (-2010, "Account has insufficient balance for requested action.")
DUPLICATE_ORDER = (-2010, "Duplicate order sent.")
CANCEL_UNKNOWN = (-2011, "Unknown order sent.")
NO_SUCH_ORDER = (-2013, "Order does not exist.")
MARGIN_INSUFFICIENT = (-2019, "Margin is insufficient.")
REDUCE_ONLY_REJECTED = (-2022, "ReduceOnly Order is rejected.")
GTX_WOULD_TAKE = (-5022, "Due to the order could not be executed as maker, the Post Only order will be rejected.")
UNSUPPORTED = (-1020, "This operation is not supported.")
BAD_TIF = (-1115, "Invalid timeInForce.")
BAD_ORDER_TYPE = (-1116, "Invalid orderType.")
BAD_SIDE = (-1117, "Invalid side.")
# USDⓈ-M filter failures ([UM-ERR] 40xx)
UM_PRICE_LOW = (-4013, "Price less than min price.")
UM_PRICE_HIGH = (-4002, "Price greater than max price.")
UM_PRICE_TICK = (-4014, "Price not increased by tick size.")
UM_QTY_LOW = (-4004, "Quantity less than min quantity.")
UM_QTY_HIGH = (-4005, "Quantity greater than max quantity.")
UM_QTY_STEP = (-4023, "Qty not increased by step size.")
UM_CLIENT_ID = (-4015, "Client order id is not valid.")


def err(pair: tuple[int, str], status: int = 400, **kw) -> BinanceError:
    """``BinanceError`` from one of the ``(code, msg)`` pairs above."""
    return BinanceError(pair[0], pair[1], status, **kw)


def mandatory(name: str) -> BinanceError:
    """-1102 for a missing, empty or malformed parameter ``name``."""
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal(name: str, legal: str) -> BinanceError:
    """-1100 for a parameter with characters outside ``legal``."""
    return BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def spot_filter(name: str) -> BinanceError:
    """Spot -1013 ``Filter failure: <FILTER>`` ([S-ERR], filters.md [S-FILT])."""
    return BinanceError(-1013, f"Filter failure: {name}")


def um_min_notional(notional: str) -> BinanceError:
    """USDⓈ-M -4164 (the number is the symbol's MIN_NOTIONAL; research notes §6)."""
    return BinanceError(-4164, f"Order's notional must be no smaller than {notional} (unless you choose reduce only).")
