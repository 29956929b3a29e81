"""Command-line options of ``python -m mmcore emulate`` (argparse only: the CLI imports this without aiohttp)."""
from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from pathlib import Path


class SetupError(ValueError):
    """Bad arguments, accounts or data files (exit 2)."""


def parse_accounts(specs) -> list[tuple[str, str]]:
    out = []
    for s in specs or ():
        key, sep, secret = s.partition(":")
        if not sep or not key or not secret:
            raise SetupError("--account: expected KEY:SECRET")
        out.append((key, secret))
    if len({k for k, _ in out}) != len(out):
        raise SetupError("--account: an API key was given twice")
    return out


def parse_ed25519_accounts(specs) -> list[tuple[str, bytes]]:
    """``KEY:PUBLIC_KEY_PEM_FILE`` specs -> ``[(key, pem bytes)]``; SetupError for a bad spec or unreadable file."""
    out = []
    for s in specs or ():
        key, sep, path = s.partition(":")
        if not sep or not key or not path:
            raise SetupError("--ed25519-account: expected KEY:PUBLIC_KEY_PEM_FILE")
        try:
            out.append((key, Path(path).expanduser().read_bytes()[:16384]))
        except OSError as exc:
            raise SetupError(f"--ed25519-account: {path} cannot be read ({type(exc).__name__})") from None
    return out


def parse_balances(specs) -> dict:
    out = {}
    for s in specs or ():
        asset, sep, amount = s.partition("=")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            value = None
        if not sep or not asset.isalnum() or value is None or not value.is_finite():
            raise SetupError(f"--balance {s[:40]!r}: expected ASSET=AMOUNT, e.g. USDT=100000")
        out[asset.upper()] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mmcore emulate",
                                description="Binance-compatible exchange emulator on 127.0.0.1 (REST, market-data "
                                            "WebSocket, WebSocket API, user data) replaying recordings.")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser, verbose: bool = True) -> None:
    from mmcore.config import DEFAULT_CONFIG
    p.add_argument("--data", action="append", required=True, metavar="FILE",
                   help="a recording (one per symbol, all of one market; repeatable)")
    p.add_argument("--speed", type=float, default=1.0, help="recorded time per wall time; 0 = as fast as read")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default 0: a free port)")
    p.add_argument("--account", action="append", metavar="KEY:SECRET",
                   help="an account's API key and HMAC secret (repeatable; default: one generated, printed)")
    p.add_argument("--ed25519-account", action="append", metavar="KEY:PUBLIC_KEY_PEM_FILE",
                   help="an account with an Ed25519 API key, given by its public key in PEM (repeatable)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (sim models, instruments)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--balance", action="append", metavar="ASSET=AMOUNT",
                   help="starting balance of every account (spot assets; USDⓈ-M: the margin asset)")
    p.add_argument("--ping-interval", type=float, help="server ping interval, s (spot 20, USDⓈ-M 180)")
    p.add_argument("--pong-timeout", type=float, help="close a connection without a pong after, s (60 / 600)")
    p.add_argument("--lifetime", type=float, help="close every WebSocket after, s (86400)")
    p.add_argument("--listen-key-ttl", type=float, help="USDⓈ-M listenKey validity, s (3600)")
    p.add_argument("--leverage", type=int, help="USDⓈ-M leverage (20)")
    p.add_argument("--weight-limit", type=int, help="REQUEST_WEIGHT per minute per account (6000 / 2400)")
    p.add_argument("--orders-limit", type=int, help="ORDERS per 10 s per account (50 / 300)")
    p.add_argument("--start", choices=("client", "now", "paused"), default="client",
                   help="when the replay starts: at the first client (default), now, or at POST /_emulator/resume")
    if verbose:
        p.add_argument("-v", "--verbose", action="store_true", help="log INFO lines")


def settings_from_args(args) -> dict:
    return {"ping_interval_s": args.ping_interval, "pong_timeout_s": args.pong_timeout, "lifetime_s": args.lifetime,
            "listen_key_ttl_s": args.listen_key_ttl, "leverage": args.leverage,
            "weight_per_minute": args.weight_limit, "orders_per_10s": args.orders_limit,
            "balances": parse_balances(args.balance) or None, "start": args.start}


