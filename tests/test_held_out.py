"""benchmarks/held_out.py (issue 17, item 6): which fitted adversaries each agent meets as a
transferred (held-out) attack."""

from __future__ import annotations

from _benchmarks import load_benchmark


def test_each_agent_meets_the_median_agents_adversary_or_every_peers():
    held_out = load_benchmark("held_out")
    group = ["s0", "s1", "s2"]
    # the median protocol: the median agent's fits, replayed on the others; the median agent
    # itself has no held-out source, and a group without a median agent has none
    assert [held_out.transfer_peers(group, "s1", run, every_seed=False) for run in group] == [["s1"], [], ["s1"]]
    assert held_out.transfer_peers(group, None, "s0", every_seed=False) == []
    # every seed fitted (a reliability study): each agent meets all its peers', never its own
    assert [held_out.transfer_peers(group, None, run, every_seed=True) for run in group] == [
        ["s1", "s2"], ["s0", "s2"], ["s0", "s1"]]
    assert held_out.transfer_peers(["s0"], None, "s0", every_seed=True) == []


def test_a_peer_offers_the_fit_its_report_kept_or_every_fit_it_holds(tmp_path):
    held_out = load_benchmark("held_out")
    run = tmp_path / "peer"
    cache = run / "attacks" / "eps0.075-linf"
    for where in (cache, cache / "fit2", cache / "fit1", cache / "fit10"):
        where.mkdir(parents=True, exist_ok=True)
        (where / "sa-rl.json").write_text("{}")
    (cache / "pa-ad.json").write_text("{}")
    # the report's kept fit, through the run directory (the transfer attack resolves it)
    assert held_out.peer_fits(run, 0.075, "inf", "sa-rl", all_fits=False) == [(run, None)]
    # every fit, in fit order (fit10 after fit2: by number, not by name)
    assert held_out.peer_fits(run, 0.075, "inf", "sa-rl", all_fits=True) == [
        (cache / "sa-rl", 0), (cache / "fit1" / "sa-rl", 1), (cache / "fit2" / "sa-rl", 2), (cache / "fit10" / "sa-rl", 10)]
    assert held_out.peer_fits(run, 0.075, "inf", "pa-ad", all_fits=True) == [(cache / "pa-ad", 0)]
    assert held_out.peer_fits(run, 0.075, "inf", "pa-ad", all_fits=False) == [(run, None)]
    # a peer never fitted offers nothing (nor at another radius)
    assert held_out.peer_fits(tmp_path / "other", 0.075, "inf", "sa-rl", all_fits=True) == []
    assert held_out.peer_fits(run, 0.05, "inf", "sa-rl", all_fits=False) == []


def test_the_page_shows_the_held_out_returns_not_the_note_of_which_were_replayed():
    import pandas as pd

    held_out = load_benchmark("held_out")
    table = pd.DataFrame([{"run": "s0", "natural": 1.0, "transfers": "every fit of every other seed", "critic-50": 2.0,
                           "transfer sa-rl": 3.0, "transfer pa-ad": float("nan")}])  # fmt: skip
    assert held_out.return_columns(table) == ["critic-50", "transfer sa-rl", "transfer pa-ad"]
