"""Binance URLs per venue, testnet flag and endpoint override, and the market-data stream names (pure functions).

Production hosts (Binance docs, "General API Information" / "WebSocket Streams" / "WebSocket API" pages):

- spot: streams ``wss://stream.binance.com:9443`` (combined ``/stream?streams=``), WebSocket API
  ``wss://ws-api.binance.com:443/ws-api/v3``, REST ``https://api.binance.com``
  (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams,
  https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/general-api-information);
- USDⓈ-M: routed streams ``wss://fstream.binance.com/public`` (depth, bookTicker), ``/market`` (aggTrade,
  markPrice, kline), ``/private`` (user data) since the 2026-03-06 notice (legacy unrouted URLs retired
  2026-04-23), WebSocket API ``wss://ws-fapi.binance.com/ws-fapi/v1``, REST ``https://fapi.binance.com``
  (https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams,
  https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-api-general-info).

Testnet (``venue.testnet: true``):

- spot testnet (https://developers.binance.com/docs/binance-spot-api-docs/testnet): streams
  ``wss://stream.testnet.binance.vision``, WebSocket API ``wss://ws-api.testnet.binance.vision/ws-api/v3``, REST
  ``https://testnet.binance.vision``;
- USDⓈ-M demo trading (the futures testnet moved to demo trading; ccxt's futures sandbox is gone): REST
  ``https://demo-fapi.binance.com``, streams ``wss://demo-fstream.binance.com`` (same routes as production),
  WebSocket API ``wss://testnet.binancefuture.com/ws-fapi/v1``. Sources: Binance's own SDKs' constants
  (``DERIVATIVES_TRADING_USDS_FUTURES_REST_API_DEMO_URL``, binance-sdk on docs.rs) and NautilusTrader's
  ``BINANCE_FUTURES_USD_DEMO_WS_URL = wss://demo-fstream.binance.com/ws`` and
  ``BINANCE_FUTURES_USD_WS_API_TESTNET_URL = wss://testnet.binancefuture.com/ws-fapi/v1``; the official docs pages
  found did not list the demo WebSocket API host, so that one is the least certain (check before a demo run).

Endpoint override (``venue.endpoint`` / ``--endpoint http://127.0.0.1:PORT``): every URL on that host under the
same paths (``ws://`` for WebSockets, ``wss://`` for an ``https://`` endpoint), as the emulator serves them.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

SPOT = "binance_spot"
USDM = "binance_usdm"
VENUES = (SPOT, USDM)

_HOSTS = {
    # venue, testnet: (stream base, ws api url, rest base)
    (SPOT, False): ("wss://stream.binance.com:9443", "wss://ws-api.binance.com:443/ws-api/v3",
                    "https://api.binance.com"),
    (SPOT, True): ("wss://stream.testnet.binance.vision", "wss://ws-api.testnet.binance.vision/ws-api/v3",
                   "https://testnet.binance.vision"),
    (USDM, False): ("wss://fstream.binance.com", "wss://ws-fapi.binance.com/ws-fapi/v1", "https://fapi.binance.com"),
    (USDM, True): ("wss://demo-fstream.binance.com", "wss://testnet.binancefuture.com/ws-fapi/v1",
                   "https://demo-fapi.binance.com"),
}
_WSAPI_PATH = {SPOT: "/ws-api/v3", USDM: "/ws-fapi/v1"}
#: REST paths used by the market-data feed (public, weight per the docs' depth limits).
DEPTH_PATH = {SPOT: "/api/v3/depth", USDM: "/fapi/v1/depth"}
TRADES_PATH = {SPOT: "/api/v3/trades", USDM: "/fapi/v1/trades"}


@dataclass(frozen=True)
class BinanceUrls:
    """The URLs of one venue: ``stream_base`` (``ws[s]://host[:port]``; combined streams are
    ``stream_base + route_prefix + /stream?streams=...``), ``ws_api`` (full URL), ``rest`` (base, no path)."""

    venue: str
    stream_base: str
    ws_api: str
    rest: str

    def routes(self) -> tuple[str, ...]:
        """Route prefixes of the market-data connections: ``("",)`` on spot, ``("/public", "/market")`` on
        USDⓈ-M (``/private`` is for user data)."""
        return ("",) if self.venue == SPOT else ("/public", "/market")

    def combined_stream_url(self, route: str, streams) -> str:
        """The combined-stream URL of ``streams`` on ``route`` (``""``, ``"/public"``, ``"/market"``)."""
        return f"{self.stream_base}{route}/stream?streams={'/'.join(streams)}"

    def rest_url(self, path: str) -> str:
        return self.rest + path


def urls_for(venue: str, testnet: bool = False, endpoint: str | None = None) -> BinanceUrls:
    """The URLs of ``venue`` (binance_spot / binance_usdm). ``endpoint``: ``http[s]://host[:port]`` puts every
    URL on that host (see the module docstring). Raises ValueError for another venue or a bad endpoint."""
    if venue not in VENUES:
        raise ValueError(f"venue {venue!r} is not a Binance venue ({', '.join(VENUES)})")
    if endpoint is None:
        stream, ws_api, rest = _HOSTS[(venue, bool(testnet))]
        return BinanceUrls(venue, stream, ws_api, rest)
    u = urlsplit(endpoint)
    if u.scheme not in ("http", "https") or not u.hostname or u.path not in ("", "/") or u.query:
        raise ValueError(f"endpoint {endpoint[:80]!r}: expected http[s]://host[:port]")
    ws = "wss" if u.scheme == "https" else "ws"
    netloc = u.netloc
    return BinanceUrls(venue, f"{ws}://{netloc}", f"{ws}://{netloc}{_WSAPI_PATH[venue]}", f"{u.scheme}://{netloc}")


def trade_kind(venue: str, trade_stream: str = "auto") -> str:
    """``trade`` or ``aggTrade`` for ``venue.trade_stream`` (``auto``: trade on spot, aggTrade on USDⓈ-M: the
    documented trade stream of each market)."""
    if trade_stream == "auto":
        return "trade" if venue == SPOT else "aggTrade"
    if trade_stream not in ("trade", "aggTrade"):
        raise ValueError(f"trade_stream {trade_stream!r}: auto | trade | aggTrade")
    return trade_stream


def route_of(venue: str, kind: str) -> str:
    """Route prefix serving stream ``kind`` (``depth@100ms``, ``bookTicker``, ``trade``, ``aggTrade``): ``""`` on
    spot; on USDⓈ-M ``/public`` for depth*, bookTicker and trade (the undocumented ``@trade`` of the bundled
    recordings is public, as the emulator's ``streams.route_of`` serves it), ``/market`` for aggTrade and the rest."""
    if venue == SPOT:
        return ""
    return "/public" if (kind.startswith("depth") or kind in ("bookTicker", "trade")) else "/market"


def stream_plan(venue: str, symbols, depth_stream: str = "depth@100ms", trade_stream: str = "auto",
                book_ticker: bool = True) -> dict[str, list[str]]:
    """``{route: [stream names]}`` for ``symbols`` (lowercase ``<s>@<kind>``), routes in order; a route with no
    stream is left out."""
    kinds = [depth_stream, trade_kind(venue, trade_stream)] + (["bookTicker"] if book_ticker else [])
    plan: dict[str, list[str]] = {}
    for kind in kinds:
        r = route_of(venue, kind)
        plan.setdefault(r, []).extend(f"{s.lower()}@{kind}" for s in symbols)
    return plan
