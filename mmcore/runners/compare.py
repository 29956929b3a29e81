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
MODELS = ("avellaneda_stoikov", "glft", "ladder", "band")
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


async def compare(config_path: str, overrides: list, data: list, models=MODELS, market: str | None = None,
                  cache: bool = True) -> list:
    """Replay every ``data`` file once per model (in order); returns the rows. ``cache``: from each file's
    decoded-event cache (built on first use; :mod:`mmcore.runners.event_cache`). Raises ConfigError naming the
    field when a model's config is invalid, and what ``build_session`` raises for a bad data file."""
    from mmcore.runners.replay import build_session, run_session, summarize
    rows = []
    for model in models:
        config: Config = load_config(config_path, [*overrides, f"strategy.model={model}"])
        for path in data:
            s = build_session(config, path, market, cache=cache)
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


def print_table(rows: list, console=None,
                title: str = "mmcore compare: every model on the same data (replay, simulated exchange)") -> None:
    """The rows as one rich table: a column per (model, recording), a line per figure (narrow terminals)."""
    from rich.console import Console
    from rich.table import Table
    console = console or Console()
    t = Table(title=title)
    t.add_column("")
    for r in rows:
        t.add_column(f"{r['model']}\n{r['data']}", justify="right")
    for c in COLUMNS[2:]:
        t.add_row(c.replace("_", " "), *("-" if r[c] is None else str(r[c]) for r in rows))
    console.print(t)


# --- sweep: a parameter grid over recordings ---
def parse_grid(specs) -> list[tuple[str, list[str]]]:
    """``["strategy.gamma=0.01,0.1", ...]`` -> ``[("strategy.gamma", ["0.01", "0.1"]), ...]`` (values stay YAML
    text, parsed by the config loader). Raises ValueError naming the bad ``--grid`` item."""
    out = []
    for spec in specs or ():
        key, sep, values = spec.partition("=")
        vals = [v.strip() for v in values.split(",")] if sep else []
        if not key or "." not in key or not vals or any(not v for v in vals):
            raise ValueError(f"--grid {spec!r}: expected KEY=V1,V2,... with a dotted config key")
        if key in (k for k, _ in out):
            raise ValueError(f"--grid {key}: given twice")
        out.append((key.strip(), vals))
    if not out:
        raise ValueError("--grid: at least one KEY=V1,V2,...")
    return out


def grid_points(grid) -> list[dict]:
    """Every combination of the grid's values, the first key varying slowest."""
    points = [{}]
    for key, vals in grid:
        points = [dict(p, **{key: v}) for p in points for v in vals]
    return points


def _sweep_task(args) -> dict:
    """One (grid point, recording) replay, in a worker process; returns the row with the grid keys first."""
    import asyncio
    from mmcore.runners.replay import build_session, run_session, summarize
    config_path, overrides, point, path, market, cache = args
    config = load_config(config_path, [*overrides, *(f"{k}={v}" for k, v in point.items())])
    s = build_session(config, path, market, cache=cache)
    asyncio.run(run_session(s))
    return {**point, **row_of(config.get("strategy.model"), path, summarize(s), s.series.inventory)}


def sweep(config_path: str, overrides: list, data: list, grid, workers: int = 0, market: str | None = None,
          ray_address: str | None = None, cache: bool = True) -> list:
    """Replay every recording at every grid point on a local process pool (``workers``: 0 = one per CPU, 1 = in
    this process; ``cache``: from the decoded-event caches, built here first), or as Ray tasks on the cluster at ``ray_address`` (``"local"``: a Ray instance started for
    this sweep; Ray is the optional ``ray`` extra, and the data paths must be readable where the tasks run);
    rows in grid order. Every grid point's config is validated first (ConfigError names the field and the
    point) so that a bad value fails before any replay. Raises RuntimeError when Ray is asked for and not
    installed."""
    import os
    from concurrent.futures import ProcessPoolExecutor
    points = grid_points(grid)
    for p in points:
        load_config(config_path, [*overrides, *(f"{k}={v}" for k, v in p.items())])
    if cache and ray_address is None:         # build each file's event cache once, before the workers read it
        from mmcore.runners.replay import build_session
        for path in dict.fromkeys(data):
            build_session(load_config(config_path, list(overrides)), path, market, cache=True).journal.close()
    tasks = [(config_path, list(overrides), p, str(Path(path).resolve()), market, cache and ray_address is None)
             for p in points for path in data]
    if ray_address is not None:
        return _sweep_ray(tasks, ray_address)
    n = workers or min(len(tasks), os.cpu_count() or 1)
    if n <= 1:
        return [_sweep_task(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=n) as pool:
        return list(pool.map(_sweep_task, tasks))


def _sweep_ray(tasks: list, address: str) -> list:
    """The tasks as Ray remote calls (one CPU each), results in task order (``ray.get`` keeps it)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray: Ray is not installed (pip install -e '.[ray]')") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=None if address == "local" else address, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        remote = ray.remote(num_cpus=1)(_sweep_task)
        return ray.get([remote.remote(t) for t in tasks])
    finally:
        if started:
            ray.shutdown()


def write_sweep_csv(rows: list, keys: list, path: Path) -> Path:
    """One CSV row per (grid point, recording): the grid keys, then the compare columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*keys, *COLUMNS])
        w.writeheader()
        w.writerows(rows)
    return path


def write_heatmap(rows: list, grid, path: Path, metric: str = "mtm_pnl") -> Path:
    """A heatmap PNG of ``metric`` (summed over the recordings) over the first two grid keys (one key: one row
    of cells; more keys: the first two, the others' values summed over)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    (k1, v1), (k2, v2) = grid[0], (grid[1] if len(grid) > 1 else ("", [""]))
    z = np.zeros((len(v2), len(v1)))
    for r in rows:
        i = v2.index(r[k2]) if k2 else 0
        z[i, v1.index(r[k1])] += float(r[metric])
    fig, ax = plt.subplots(figsize=(1.2 * len(v1) + 3, 0.8 * len(v2) + 2))
    im = ax.imshow(z, cmap="RdYlGn", aspect="auto", origin="lower")
    ax.set_xticks(range(len(v1)), v1)
    ax.set_yticks(range(len(v2)), v2)
    ax.set_xlabel(k1)
    ax.set_ylabel(k2)
    for (i, j), val in np.ndenumerate(z):
        ax.text(j, i, f"{val:.3g}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, label=metric)
    ax.set_title(f"mmcore sweep: {metric} (sum over {len({r['data'] for r in rows})} recording(s))")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
