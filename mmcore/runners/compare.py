"""``python -m mmcore compare``: every quoting model on the same recordings, one row per (model, recording).

Each row is a full replay (the same engine, simulated exchange, queue and latency models as ``backtest``) with
``strategy.model`` set to the model and everything else from the config; columns: fills, traded volume (base),
time-weighted quoted spread (bps), markouts at 1 s and 30 s (bps per fill), realised and marked PnL and fees
(quote currency), max |q| and the standard deviation of the inventory (base, over the plot's samples).
"""
from __future__ import annotations

import csv
import math
from decimal import Decimal
from pathlib import Path

from mmcore.config import Config, load_config

#: The models ``strategy.model`` accepts (the compare order).
MODELS = ("avellaneda_stoikov", "glft")
COLUMNS = ("model", "data", "fills", "volume", "quoted_spread_bps", "markout_1s_bps", "markout_30s_bps",
           "realized_pnl", "mtm_pnl", "fees", "max_abs_inventory", "inventory_std")


def _std(xs) -> float | None:
    xs = [x for x in xs if x == x]
    if len(xs) < 2:
        return None
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def row_of(model: str, data: str, summary: dict, inventory_series) -> dict:
    """One compare row from a replay's summary and its sampled inventory series."""
    mk = summary.get("markouts") or {}
    q = summary.get("quoting") or {}
    std = _std(inventory_series)
    return {"model": model, "data": Path(data).name, "fills": summary["buy_fills"] + summary["sell_fills"],
            "volume": str(Decimal(summary["buy_volume"]) + Decimal(summary["sell_volume"])),
            "quoted_spread_bps": q.get("quoted_spread_bps"),
            "markout_1s_bps": (mk.get("1s") or {}).get("mean_bps"),
            "markout_30s_bps": (mk.get("30s") or {}).get("mean_bps"),
            "realized_pnl": summary["realized_pnl"], "mtm_pnl": summary["mtm_pnl"], "fees": summary["fees"],
            "max_abs_inventory": summary["max_abs_inventory"],
            "inventory_std": round(std, 8) if std is not None else None}


async def compare(config_path: str, overrides: list, data: list, models=MODELS, market: str | None = None) -> list:
    """Replay every ``data`` file once per model (in order); returns the rows. Raises ConfigError naming the
    field when a model's config is invalid, and what ``build_session`` raises for a bad data file."""
    from mmcore.runners.replay import build_session, run_session, summarize
    rows = []
    for model in models:
        config: Config = load_config(config_path, [*overrides, f"strategy.model={model}"])
        for path in data:
            s = build_session(config, path, market)
            await run_session(s)
            rows.append(row_of(model, path, summarize(s), s.series.inventory))
    return rows


def write_csv(rows: list, path: Path) -> Path:
    """The rows as CSV (COLUMNS order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path


def print_table(rows: list, console=None) -> None:
    """The rows as one rich table: a column per (model, recording), a line per figure (narrow terminals)."""
    from rich.console import Console
    from rich.table import Table
    console = console or Console()
    t = Table(title="mmcore compare: every model on the same data (replay, simulated exchange)")
    t.add_column("")
    for r in rows:
        t.add_column(f"{r['model']}\n{r['data']}", justify="right")
    for c in COLUMNS[2:]:
        t.add_row(c.replace("_", " "), *("-" if r[c] is None else str(r[c]) for r in rows))
    console.print(t)
