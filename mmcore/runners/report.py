"""Backtest outputs: ``report.json`` (numbers in the units named in the keys) and ``report.png``
(mid and our quotes, inventory, mark-to-market PnL over time), plus the terminal summary table.

A run that ended early says so: ``data_complete`` false with ``data_error`` (what is wrong with the file),
``journal_error`` (the first failed journal write) and ``journal_lost_writes``; the table shows them as rows.
"""
from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table


def write_json(summary: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.json"
    path.write_text(json.dumps(summary, indent=2))
    return path


def write_plot(series, summary: dict, out_dir: Path) -> Path:
    """Stacked panels against event time (s from the first sample): price with our quotes and fills,
    inventory, mark-to-market PnL, sigma (both estimators), and (glft with online estimation) A and kappa over
    time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg      # imported here: only a plot needs it
    from matplotlib.figure import Figure                              # (object API: no pyplot state)

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.png"
    t0 = series.ts_ns[0] if series.ts_ns else 0
    t = [(x - t0) / 1e9 for x in series.ts_ns]
    est = (summary.get("intensity") or {}).get("estimates") or []
    sig = getattr(series, "sigma", None) or []
    n = 3 + bool(est) + bool(sig)
    fig = Figure(figsize=(11, 8 + 2 * (n - 3)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3, 1.3, 1.3, 1.3][:n]})
    ax = axes[0]
    ax.plot(t, series.mid, color="black", lw=0.8, label="mid")
    ax.plot(t, series.bid, color="tab:green", lw=0.6, label="our bid")
    ax.plot(t, series.ask, color="tab:red", lw=0.6, label="our ask")
    buys = [f for f in summary["fills"] if f["side"] == "buy"]
    sells = [f for f in summary["fills"] if f["side"] == "sell"]
    ax.scatter([(f["ts_ns"] - t0) / 1e9 for f in buys], [float(f["price"]) for f in buys], marker="^",
               color="tab:green", s=18, label="buy fill", zorder=3)
    ax.scatter([(f["ts_ns"] - t0) / 1e9 for f in sells], [float(f["price"]) for f in sells], marker="v",
               color="tab:red", s=18, label="sell fill", zorder=3)
    ax.set_ylabel("price (quote)")
    ax.legend(loc="upper right", fontsize=8, ncol=5)
    ax.set_title(f"{summary['market']} {summary['symbol']}: {summary['events']} events, "
                 f"{summary['fill_count']} fills, mtm PnL {float(summary['mtm_pnl']):.4f}")
    axes[1].step(t, series.inventory, where="post", color="tab:blue", lw=0.9)
    axes[1].axhline(0, color="grey", lw=0.5)
    axes[1].set_ylabel("inventory (base)")
    axes[2].plot(t, series.pnl, color="tab:purple", lw=0.9)
    axes[2].axhline(0, color="grey", lw=0.5)
    axes[2].set_ylabel("mtm PnL (quote)")
    if sig:
        ax = axes[3]
        used = (summary.get("strategy") or {}).get("sigma_estimator", "sigma")
        ax.plot(t, sig, color="tab:brown", lw=0.9, label=f"sigma ({used}, quoted)")
        ax.plot(t, series.sigma_alt, color="tab:gray", lw=0.7, label="sigma (other estimator)")
        ax.set_ylabel("sigma (quote/sqrt s)")
        ax.legend(loc="upper right", fontsize=8)
    if est:
        te = [(e["ts_ns"] - t0) / 1e9 for e in est]
        axa = axes[-1]
        axa.step(te, [e["A_per_s"] for e in est], where="post", color="tab:orange", lw=0.9)
        axa.set_ylabel("A (arrivals/s)", color="tab:orange")
        k = axa.twinx()
        k.step(te, [e["kappa_per_quote"] for e in est], where="post", color="tab:cyan", lw=0.9)
        k.set_ylabel("kappa (1/quote)", color="tab:cyan")
    axes[-1].set_xlabel("event time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def print_summary(summary: dict, console: Console | None = None, title: str | None = None) -> None:
    console = console or Console()
    lat, latp = summary["latency_us"], summary["latency_with_parse_us"]
    t = Table(title=title or f"mmcore replay: {summary['market']} {summary['symbol']}", show_header=False)
    t.add_column("metric", style="bold")
    t.add_column("value", justify="right")
    rows = [
        ("events processed", f"{summary['events']:,} ({summary['lines']:,} lines)"),
        ("wall time", f"{summary['wall_s']:.3f} s"),
        ("events/s", f"{summary['events_per_s']:,}"),
        ("orders placed", f"{summary['orders_placed']:,}"),
        ("cancels", f"{summary['cancels']:,}"),
        ("rejects (post-only)", f"{summary['rejects']:,}"),
        ("fills (buy / sell)", f"{summary['fill_count']} ({summary['buy_fills']} / {summary['sell_fills']})"),
        ("volume buy / sell (base)", f"{summary['buy_volume']} / {summary['sell_volume']}"),
        ("final inventory (base)", summary["final_inventory"]),
        ("max |inventory| (base)", summary["max_abs_inventory"]),
        ("realised PnL (quote)", summary["realized_pnl"]),
        ("mark-to-market PnL (quote)", summary["mtm_pnl"]),
        ("fees (quote)", summary["fees"]),
        ("hot path p50 / p99 / max (µs)", f"{lat['p50']} / {lat['p99']} / {lat['max']}"),
        ("incl. JSON parse p50 / p99 / max (µs)" if not title else
         "frame -> orders p50 / p99 / max (µs)", f"{latp['p50']} / {latp['p99']} / {latp['max']}"),
        ("sequence gaps / crossed / malformed", f"{summary['gaps']} / {summary['crossed_book_events']} / "
                                                f"{summary['malformed_lines']}"),
        ("bookTicker checks ok / mismatches", f"{summary['bbo_checks_ok']} / {summary['bbo_mismatches']}"),
        ("stale-data pauses / refused quotes", f"{summary['stale_pauses']} / {summary['quotes_refused']:,}"),
        ("contradicting fills refused", f"{summary['fill_contradictions']}"),
    ]
    sim = summary.get("sim")
    if sim:
        fc = sim["fill_causes"]
        rows.append(("fills by cause: queue / through / cross", " / ".join(str(fc[k]["fills"]) for k in fc)))
        feed = sim.get("feed")
        rows.append(("sim queue model", sim["queue_model"]))
        rows.append(("feed latency p50 / p99; clock offset (ms)",
                     f"{feed['latency_ms_p50']:.1f} / {feed['latency_ms_p99']:.1f}; {feed['offset_ms']:.1f}"
                     if feed else "none (exchange on local time)"))
    mk = summary.get("markouts")
    if mk:
        rows.append(("markouts " + " / ".join(mk) + " (bps per fill)",
                     " / ".join("-" if v["mean_bps"] is None else f"{v['mean_bps']:+.2f}" for v in mk.values())))
        rows.append(("PnL: spread capture / inventory / fees (quote)",
                     f"{summary['spread_capture_quote']:+.4f} / {summary['inventory_pnl_quote']:+.4f} / "
                     f"{-float(summary['fees']):+.4f}"))
    qs = summary.get("quoting")
    if qs and qs["quoted_fraction"] is not None:
        pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"        # noqa: E731
        rows.append(("quoted both sides / at the touch bid, ask", f"{pct(qs['quoted_fraction'])} / "
                     f"{pct(qs['bid_at_touch'])}, {pct(qs['ask_at_touch'])}"))
        rows.append(("time-weighted quoted spread / fill rate",
                     f"{qs['quoted_spread_bps'] if qs['quoted_spread_bps'] is not None else '-'} bps / "
                     f"{pct(qs['fill_rate'])} of orders"))
    est = summary.get("intensity")
    if est is not None:
        rows.append(("model; A / kappa in use (fits)", f"{summary['model']}; {est['A_per_s']:.4g}/s / "
                     f"{est['kappa_per_quote']:.4g} ({est['fits']} fits, {est['arrivals']:,} arrivals of "
                     f"{est['prints']:,} prints)"))
    refusals = ", ".join(f"{k} {v}" for k, v in summary["risk_refusals"].items()) or "none"
    states = ", ".join(f"{c['from']}->{c['to']}" for c in summary["trading_state_changes"]) or "none"
    rows += [
        ("risk refusals", refusals),
        ("trading state (changes)", f"{summary['trading_state']} ({states})"),
        ("orders by final state", ", ".join(f"{k} {v}" for k, v in summary["orders"].items())),
        ("shutdown clean", str(summary["shutdown_clean"])),
    ]
    if not summary.get("data_complete", True):
        why = summary.get("data_error") or ("interrupted" if summary.get("interrupted") else "journal write failed")
        rows.append(("data", f"ended early after {summary['lines']:,} lines: {why}"))
    if summary.get("journal_error"):
        rows.append(("journal", f"write failed: {summary['journal_error']} "
                                f"({summary.get('journal_lost_writes', 0)} lost)"))
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)
