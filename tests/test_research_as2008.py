"""``research as2008``: Avellaneda & Stoikov (2008) section 3.3 with the compiled quoter, checked on the
formulas' known properties and against the independent numpy simulation recorded in
../shared/docs/quoting_models.md ("Ambiguities": constant spread 23.9 and full spread 48.6 for the inventory
strategy at gamma = 0.5, a symmetric full-spread run about 58, no symmetric run above about 68.7)."""
import math
import os
import subprocess
import sys

import pytest

from mmcore.research.as2008 import DT, GAMMAS, K, SIGMA, simulate, table

PATHS = 1000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def constant():
    return {(r.gamma, r.strategy): r for r in table(PATHS, seed=7, spread="constant")}


@pytest.fixture(scope="module")
def full():
    return {(r.gamma, r.strategy): r for r in table(PATHS, seed=7, spread="full")}


def test_the_spread_column_is_the_constant_part_or_its_time_average_with_the_variance_term(constant, full):
    mean_left = 1.0 - DT * (int(round(1 / DT)) - 1) / 2            # mean of T - t over the 200 steps
    for g in GAMMAS:
        c = 2 / g * math.log1p(g / K)
        assert constant[(g, "inventory")].spread == pytest.approx(c, abs=1e-9)
        assert full[(g, "symmetric")].spread == pytest.approx(c + g * SIGMA**2 * mean_left, abs=1e-9)
    assert [round(constant[(g, "inventory")].spread, 2) for g in GAMMAS] == [1.29, 1.33, 1.15]   # the paper's


def test_the_inventory_strategy_trades_profit_for_a_smaller_variance_and_inventory(constant, full):
    for rows in (constant, full):
        for g in GAMMAS:
            inv, sym = rows[(g, "inventory")], rows[(g, "symmetric")]
            assert inv.profit_std < sym.profit_std and inv.final_q_std < sym.final_q_std
            assert abs(inv.final_q_mean) < 4 * inv.final_q_std / math.sqrt(PATHS)
        stds = [rows[(g, "inventory")].final_q_std for g in (0.01, 0.1, 0.5)]
        assert stds[0] > stds[1] > stds[2]                            # final-q std shrinks as gamma grows


def test_symmetric_profit_does_not_depend_on_gamma_beyond_its_spread_and_never_beats_the_bound(constant):
    profits = [constant[(g, "symmetric")].profit_mean for g in GAMMAS]
    se = max(constant[(g, "symmetric")].profit_std for g in GAMMAS) / math.sqrt(PATHS)
    assert max(profits) - min(profits) < 2.0 + 6 * se
    assert max(profits) < 68.7 + 4 * se                              # 2 A delta e^(-k delta) T at delta = 1/k


def test_rows_agree_with_the_independent_simulation_in_the_docs(constant, full):
    assert constant[(0.5, "inventory")].profit_mean == pytest.approx(23.9, abs=1.0)
    assert full[(0.5, "inventory")].profit_mean == pytest.approx(48.6, abs=1.0)
    assert full[(0.5, "symmetric")].profit_mean == pytest.approx(58.0, abs=1.5)


def test_same_seed_same_row_and_bad_arguments_refused():
    assert simulate(0.1, "inventory", paths=50, seed=3) == simulate(0.1, "inventory", paths=50, seed=3)
    for kw in ({"strategy": "x"}, {"spread": "x"}, {"paths": 0}, {"gamma": -1.0}):
        args = dict(gamma=0.1, strategy="inventory", spread="constant", paths=10) | kw
        with pytest.raises(ValueError):
            simulate(**args)


def test_cli_prints_the_tables_beside_the_papers_and_refuses_bad_paths():
    r = subprocess.run([sys.executable, "-m", "mmcore", "research", "as2008", "--paths", "100", "--spread", "full"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    papers = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("paper ")]
    assert "std(Final q)" in r.stdout and len(papers) == 6 and "spread full" in r.stdout
    r = subprocess.run([sys.executable, "-m", "mmcore", "research", "as2008", "--paths", "0"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "--paths 0" in r.stderr and "Traceback" not in r.stderr
