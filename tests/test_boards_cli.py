"""The boards CLI (build --list-boards, build --no-pnr, errors) and the host's protocol loop."""

import argparse

import numpy as np
import pytest

from snnfpga.boards import cli
from snnfpga.boards.host import LOST_TIMEOUT, infer_on
from snnfpga.boards.performance import Performance, busiest_layer_events, performance
from snnfpga.boards.protocol import Protocol
from snnfpga.cli import main
from snnfpga import reference
from snnfpga.ir import save
from snnfpga.testing import random_frames, random_network


def _parse(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli.add_parser(sub)
    return parser.parse_args(argv)


def test_list_boards(capsys):
    args = _parse(["build", "--list-boards"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "ulx3s-85f" in out and "icebreaker" in out and "arty-a7-35" in out


def test_unknown_board_and_missing_args(tmp_path, capsys):
    save(random_network(seed=0, name="m"), tmp_path / "m")
    assert main(["build", str(tmp_path / "m.snn.json"), "--board", "nexys"]) == 2
    err = capsys.readouterr().err
    assert "snnfpga: error: unknown board 'nexys'; supported boards: arty-a7-35, icebreaker, ulx3s-85f" in err
    assert main(["build"]) == 2
    assert "snnfpga: error: build needs MODEL and --board NAME" in capsys.readouterr().err


def test_build_no_pnr_prints_estimates(tmp_path, capsys):
    save(random_network(seed=0, name="m"), tmp_path / "m")
    args = _parse(["build", str(tmp_path / "m.snn.json"), "--board", "ulx3s-85f", "-o", str(tmp_path / "o"),
                   "--no-pnr"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "frames/W" in out and "assumption:" in out and "TrueNorth" in out
    assert (tmp_path / "o" / "snn_board.lpf").is_file()


def test_performance_uses_sim_report():
    net = random_network(seed=0)
    build_result = {"board": "icebreaker", "clock_mhz": 12.0, "fmax_mhz": 20.0, "baud": 115200,
                    "resources": {"LUT": {"used": 1000, "available": 5280}}, "power_device": "ice40up5k"}
    perf = performance(net, build_result, sim_report={"frame_interval_cycles": 600, "events_per_frame": 20,
                                                      "synaptic_events_per_frame": 300})
    assert isinstance(perf, Performance)
    assert perf.fps == pytest.approx(12e6 / 600)
    assert perf.activity["events"] == 20 and perf.activity["accumulator_updates"] == 300
    assert perf.power["fps_per_w"] == pytest.approx(perf.fps / perf.power["total_w"])
    assert perf.power_uart["fps"] == pytest.approx(perf.fps_uart)
    assert perf.power["io_w"] == 0 and perf.power_uart["io_w"] > 0
    assert set(perf.to_json()) == {"clock_mhz", "frame_interval_cycles", "interval_source", "fps", "fps_uart",
                                   "activity", "power", "power_uart", "energy_paper"}
    assert not hasattr(cli, "performance")  # the library is boards.performance, not the CLI


def test_performance_takes_the_reference_result_instead_of_running_it(monkeypatch):
    net = random_network(seed=0)
    frames = random_frames(net, 6, seed=1)
    build_result = {"board": "icebreaker", "clock_mhz": 12.0, "baud": 115200, "power_device": "ice40up5k"}
    ran = performance(net, build_result, frames=frames)
    ref = reference.simulate(net, frames)
    monkeypatch.setattr(reference, "simulate", lambda *a, **k: pytest.fail("the reference ran again"))
    given = performance(net, build_result, frames=frames, ref=ref)
    assert given.to_json() == ran.to_json()
    assert given.interval_source.startswith("estimate")
    with pytest.raises(ValueError, match="ref holds 6 frames, not the 3 given"):
        performance(net, build_result, frames=frames[:3], ref=ref)


@pytest.mark.parametrize("coding, input_coding", [("sc-ttfs", "direct"), ("ttfs", "spikes"), ("rate", "direct"),
                                                  ("rate", "spikes")])
def test_busiest_layer_without_frames_every_neuron_fires_once(coding, input_coding):
    """No frames: every input element and neuron fires once per frame (rate: at every step),
    counted by snnfpga.metrics.activity like measured activity."""
    net = random_network(coding, sizes=(10, 7, 5, 3), input_coding=input_coding, seed=3)
    steps = net.timesteps if coding == "rate" else 1
    first = 10 * (steps if input_coding == "spikes" else 1) * 7
    assert busiest_layer_events(net) == max(first, 7 * steps * 5, 5 * steps * 3)


class FakeBoard:
    """A TEST DOUBLE of a serial link to a board: answers each request with the reference."""

    def __init__(self, net, drop_after=None):
        self.net, self.proto = net, Protocol.for_network(net)
        self.rx, self.tx, self.drop_after, self.answered = bytearray(), bytearray(), drop_after, 0

    def write(self, data):
        self.rx += data
        while len(self.rx) >= self.proto.request_bytes:
            req, self.rx = self.rx[:self.proto.request_bytes], self.rx[self.proto.request_bytes:]
            seq, pixels = self.proto.decode_request(bytes(req))
            r = reference.simulate(self.net, np.asarray([pixels], dtype=np.int64))
            if self.drop_after is None or self.answered < self.drop_after:
                self.tx += self.proto.encode_response(int(r.classes[0]), [int(x) for x in r.output[0]], seq=seq)
            self.answered += 1

    def read(self, n):
        out, self.tx = bytes(self.tx[:n]), self.tx[n:]
        return out


@pytest.mark.parametrize("window", [1, 3])
def test_host_protocol_loop(window):
    net = random_network(seed=2)
    frames = random_frames(net, 5, seed=1)
    got = infer_on(FakeBoard(net), Protocol.for_network(net), frames, window=window)
    ref = reference.simulate(net, frames)
    assert got.classes == list(ref.classes)
    assert got.membranes == [tuple(int(x) for x in m) for m in ref.output]
    lost = infer_on(FakeBoard(net, drop_after=2), Protocol.for_network(net), frames, retries=1)
    assert lost.classes[:2] == list(ref.classes[:2]) and lost.lost == 3
    assert [r.lost for r in lost.results[2:]] == [LOST_TIMEOUT] * 3 and lost.results[2].attempts == 2
