"""Avellaneda & Stoikov (2008), section 3.3: the paper's numerical experiment, run with mmcore's compiled quoter.

Source: M. Avellaneda, S. Stoikov, "High-frequency trading in a limit order book", Quantitative Finance
8(3):217-224, 2008 (preprint section 3.3, Tables 1-3); parameters, procedure and the known ambiguities are copied
in ``../shared/docs/quoting_models.md`` ("Section 3.3 numerical experiment").

Setup (the paper's): s0 = 100, T = 1, sigma = 2, dt = 0.005 (200 steps), q0 = 0, k = 1.5, A = 140, gamma in
{0.1, 0.01, 0.5}, 1000 paths per gamma. At each step the quotes come from the state (s, q, T - t); with
probability ``lambda(delta) dt`` (``lambda(delta) = A exp(-k delta)``, delta the quote's distance from s, the
probability capped at 1) the ask is hit (q - 1, cash + ask) and, independently, the bid (q + 1, cash - bid); then
s moves by +-sigma sqrt(dt). Profit = cash + q_T s_T.

Strategies: ``inventory`` quotes around the reservation price ``r = s - q gamma sigma^2 (T - t)`` (the compiled
:class:`mmcore_ext.quoting.AvellanedaStoikov`, eq. 3.17); ``symmetric`` quotes the same spread around s. The
spread: ``full`` is eq. (3.18), ``gamma sigma^2 (T - t) + (2/gamma) ln(1 + gamma/k)`` (what the class computes);
``constant`` is its second term alone, which is what the paper's tables behave like (their Spread column is
1.29 / 1.33 / 1.15).

Units: prices in the paper's currency units, time in the paper's units (one unit = one second of the quoter's
event clock, ``T`` = ``horizon_s`` = 1), q in shares. Random numbers: numpy's PCG64 seeded with ``seed``; fills
and mid moves are drawn for all paths at once, the quotes path by path through the compiled quoter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mmcore_ext.quoting import AvellanedaStoikov

S0, T, SIGMA, DT, K, A = 100.0, 1.0, 2.0, 0.005, 1.5, 140.0
GAMMAS = (0.1, 0.01, 0.5)
#: Tables 1-3 of the paper: (gamma, strategy) -> (spread, profit, std profit, final q, std final q).
PAPER = {(0.1, "inventory"): (1.29, 62.94, 5.89, 0.10, 2.80), (0.1, "symmetric"): (1.29, 67.21, 13.43, -0.018, 8.66),
         (0.01, "inventory"): (1.33, 66.78, 8.76, -0.02, 4.70), (0.01, "symmetric"): (1.33, 67.36, 13.40, -0.31, 8.65),
         (0.5, "inventory"): (1.15, 33.92, 4.72, -0.02, 1.88), (0.5, "symmetric"): (1.15, 66.20, 14.53, 0.25, 9.06)}
TICK = 1e-6          # the quoter's price grid here (quote currency): rounding is negligible at s ~ 100
MAX_PATHS = 1_000_000


@dataclass(frozen=True)
class Row:
    """One line of a table: the time-averaged spread, profit mean / std, final inventory mean / std."""

    gamma: float
    strategy: str
    spread: float
    profit_mean: float
    profit_std: float
    final_q_mean: float
    final_q_std: float


def simulate(gamma: float, strategy: str, spread: str = "constant", paths: int = 1000, seed: int = 1) -> Row:
    """One row of Tables 1-3. ``strategy``: ``inventory`` | ``symmetric``; ``spread``: ``constant`` |
    ``full`` (see the module docstring). The same ``seed`` gives the same mid paths and uniform draws for every
    strategy and gamma (common random numbers). Raises ValueError for an unknown strategy or spread, paths
    outside [1, 1e6] or gamma <= 0."""
    if strategy not in ("inventory", "symmetric"):
        raise ValueError(f"strategy {strategy!r}: inventory or symmetric")
    if spread not in ("constant", "full"):
        raise ValueError(f"spread {spread!r}: constant or full")
    if not 1 <= paths <= MAX_PATHS:
        raise ValueError(f"paths {paths}: 1 to {MAX_PATHS}")
    if not gamma > 0 or not math.isfinite(gamma):
        raise ValueError(f"gamma {gamma!r}: must be > 0")
    steps = int(round(T / DT))
    rng = np.random.Generator(np.random.PCG64(seed))
    moves = np.where(rng.random((steps, paths)) < 0.5, -1.0, 1.0) * SIGMA * math.sqrt(DT)
    u_ask = rng.random((steps, paths))
    u_bid = rng.random((steps, paths))
    quoter = AvellanedaStoikov(gamma, K, T, 0.0, math.inf, TICK)
    s = np.full(paths, S0)
    q = np.zeros(paths)
    cash = np.zeros(paths)
    bid = np.empty(paths)
    ask = np.empty(paths)
    spreads = np.empty(steps)
    constant = quoter.constant_spread
    inventory = strategy == "inventory"
    for i in range(steps):
        ts = i * int(round(DT * 1e9))
        for j in range(paths):
            sj = s[j]
            quoter.compute(ts, sj, q[j], SIGMA, 0, 0)               # eq. (3.17), (3.18)
            width = quoter.spread if spread == "full" else constant
            centre = quoter.reservation if inventory else sj
            bid[j] = centre - 0.5 * width
            ask[j] = centre + 0.5 * width
        spreads[i] = width                                          # the same for every path at step i
        lam_a = A * np.exp(-K * (ask - s))
        lam_b = A * np.exp(-K * (s - bid))
        hit_a = u_ask[i] < np.minimum(1.0, lam_a * DT)
        hit_b = u_bid[i] < np.minimum(1.0, lam_b * DT)
        q -= hit_a
        cash += np.where(hit_a, ask, 0.0)
        q += hit_b
        cash -= np.where(hit_b, bid, 0.0)
        s = s + moves[i]
    profit = cash + q * s
    return Row(gamma, strategy, float(spreads.mean()), float(profit.mean()), float(profit.std(ddof=1)),
               float(q.mean()), float(q.std(ddof=1)))


def table(paths: int = 1000, seed: int = 1, spread: str = "constant") -> list[Row]:
    """Every (gamma, strategy) row of Tables 1-3, in the paper's order."""
    return [simulate(g, st, spread, paths, seed) for g in GAMMAS for st in ("inventory", "symmetric")]


def format_table(rows: list[Row], with_paper: bool = True) -> str:
    """The rows in the paper's layout (Spread, Profit, std(Profit), Final q, std(Final q)), each beside the
    paper's own figures when ``with_paper``."""
    head = f"{'gamma':>6} {'strategy':<10} {'Spread':>7} {'Profit':>8} {'std(Profit)':>12} {'Final q':>8} " \
           f"{'std(Final q)':>13}"
    out = [head]
    for r in rows:
        out.append(f"{r.gamma:>6g} {r.strategy:<10} {r.spread:>7.2f} {r.profit_mean:>8.2f} {r.profit_std:>12.2f} "
                   f"{r.final_q_mean:>8.2f} {r.final_q_std:>13.2f}")
        if with_paper and (r.gamma, r.strategy) in PAPER:
            p = PAPER[(r.gamma, r.strategy)]
            out.append(f"{'':>6} {'  paper':<10} {p[0]:>7.2f} {p[1]:>8.2f} {p[2]:>12.2f} {p[3]:>8.2f} {p[4]:>13.2f}")
    return "\n".join(out)
