"""bench.dst: a micro study writes the report and plots; the verdict follows the data."""

from __future__ import annotations

from bench.dst.report import write
from bench.dst.study import StudyConfig, run_study
from bench.dst.verdict import aggregate, verdict


def fake_runs(low_gap: float, high_spread: float) -> list[dict]:
    """Runs where magnitude trails the best by ``low_gap`` at d=0.05 and the criteria spread
    by ``high_spread`` at d=0.5; two seeds each, ±0.001 noise."""
    runs = []
    for seed, noise in ((0, -0.001), (1, 0.001)):
        for c, base_hi, base_lo in (("magnitude", 0.9, 0.8 - low_gap), ("snip", 0.9 - high_spread,
                                                                         0.8), ("set", 0.9, 0.79)):
            for d, acc in ((0.5, base_hi), (0.05, base_lo)):
                runs.append({"task": "t", "grow": "gradient", "mode": c, "density": d,
                             "seed": seed, "acc": acc + noise})
    return runs


def test_verdict_is_computed_from_the_data():
    crit = ("magnitude", "snip", "set")
    good = verdict(aggregate(fake_runs(0.0, 0.0)), "t", "gradient", (0.5, 0.05), crit)
    assert good["supported"] and good["alike_at_high"] and good["magnitude_at_low"]
    bad_low = verdict(aggregate(fake_runs(0.1, 0.0)), "t", "gradient", (0.5, 0.05), crit)
    assert bad_low["alike_at_high"] and not bad_low["magnitude_at_low"]
    assert not bad_low["supported"] and bad_low["low"][0.05]["best"] == "snip"
    bad_high = verdict(aggregate(fake_runs(0.0, 0.1)), "t", "gradient", (0.5, 0.05), crit)
    assert not bad_high["alike_at_high"] and bad_high["high"][0.5]["not_tied"] == ["snip"]


def test_micro_study_writes_report(tmp_path):
    cfg = StudyConfig(tasks=("digits",), densities=(0.5, 0.1), criteria=("magnitude", "snip"),
                      growth=("gradient",), seeds=(0, 1), steps=30, update_every=10)
    result = run_study(cfg, log=lambda *_: None)
    # 2 dense + per density 2 seeds x (static + 2 criteria)
    assert len(result["runs"]) == 2 + 2 * 2 * 3
    assert all(0.0 <= r["acc"] <= 1.0 for r in result["runs"])
    assert all(r["swapped"] > 0 for r in result["runs"] if r["mode"] in ("magnitude", "snip"))
    dense = [r["acc"] for r in result["runs"] if r["mode"] == "dense"]
    assert min(dense) > 0.5, dense  # 30 steps already learn the digits well above chance
    path = write(result, tmp_path)
    text = path.read_text()
    assert "| magnitude |" in text and "Ranking per density" in text and "## Verdict" in text
    assert (tmp_path / "dst_digits.png").stat().st_size > 1000
