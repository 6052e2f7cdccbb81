"""snnfpga.peers (benchmarks/bench_peers.py) --quick: every tool converts the same digits ANN, the peers get close
to the ANN at their longest T, and the table's T* and ratios follow from its own rows."""

from __future__ import annotations

import json

import pytest

from snnfpga import peers as bench_peers


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("peers")
    results = bench_peers.main(["--quick", "--quiet", "--out", str(out)])
    return out, results


def test_every_tool_has_a_row(quick):
    out, results = quick
    (r,) = results
    names = [t.tool for t in r.tools]
    assert names == ["snnfpga sc-ttfs", "snnfpga ttfs", "snnfpga rate", "SpikingJelly max", "SpikingJelly 99.9%",
                     "sinabs IAF (const. input)", "sinabs IAF (Bernoulli input)"]
    assert all(t.error is None for t in r.tools), [t.error for t in r.tools if t.error]
    md = (out / "peers.md").read_text()
    for n in names:
        assert f"| {n} |" in md
    assert (out / "peers.png").stat().st_size > 10_000
    js = json.loads((out / "peers.json").read_text())
    assert [t["tool"] for t in js["networks"][0]["tools"]] == names


def test_peers_reach_the_ann_and_spike(quick):
    _, (r,) = quick
    assert 0.9 < r.ann_accuracy <= 1.0
    for t in r.tools:
        assert t.points and all(p.spikes_per_frame > 0 for p in t.points), t.tool
        last = max(t.points, key=lambda p: p.T)
        if t.family != "ours":  # a converted IF network at T = 64 is within a few points of its ANN
            assert last.accuracy >= r.ann_accuracy - 0.03, (t.tool, last, r.ann_accuracy)
        # a peer's counts are cumulative over one run: more steps, more spikes
        if t.family != "ours":
            s = [p.spikes_per_frame for p in sorted(t.points, key=lambda p: p.T)]
            assert s == sorted(s) and s[-1] > s[0], (t.tool, s)


def test_reached_T_and_ratios_come_from_the_rows(quick):
    _, (r,) = quick
    for t in r.tools:
        ok = [p.T for p in t.points if p.accuracy >= r.ann_accuracy - r.tolerance - 1e-12]
        assert t.reached_T == (min(ok) if ok else None)
    ours = [t for t in r.tools if t.family == "ours"]
    peers = [t for t in r.tools if t.family != "ours"]
    assert len(r.ratios) == len(ours) * len(peers)
    for q in r.ratios:
        a = next(t for t in ours if t.tool == q.ours)
        b = next(t for t in peers if t.tool == q.theirs)
        if a.reached_T is None or b.reached_T is None:
            assert q.T_ratio is None and q.spikes_ratio is None
        else:
            assert q.T_ratio == pytest.approx(a.reached_T / b.reached_T)
            assert q.spikes_ratio == pytest.approx(a.at(a.reached_T).spikes_per_frame
                                                   / b.at(b.reached_T).spikes_per_frame)


def test_reached_and_ratios_units():
    P, R = bench_peers.Point, bench_peers.ToolResult
    pts = [P(1, 0.80, 5.0), P(2, 0.955, 9.0), P(4, 0.97, 20.0)]
    assert bench_peers.reached(pts, 0.96, 0.005) == 2
    assert bench_peers.reached(pts, 0.99, 0.005) is None
    a = R("ours", "ours", "", pts, reached_T=2)
    b = R("peer", "sinabs", "", [P(8, 0.96, 30.0)], reached_T=8)
    c = R("never", "spikingjelly", "", [P(8, 0.5, 30.0)], reached_T=None)
    q = bench_peers.ratios([a, b, c])
    assert (q[0].T_ratio, q[0].spikes_ratio) == (0.25, 0.3)
    assert (q[1].T_ratio, q[1].spikes_ratio) == (None, None)
