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
