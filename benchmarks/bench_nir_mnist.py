"""An snnTorch-trained LIF network on MNIST-10k through NIR: framework, our float reading,
integer reference and RTL accuracy side by side (issue 12's closing figures).

Trains ``Flatten → Linear(784, H) → Leaky(β = 1 − 2^-k, reset_delay=False) → Linear(H, 10)``
with BPTT on images 0–7999, exports it with ``snntorch.export_to_nir``, imports it with
``snnfpga.nir_io.import_nir``, simulates the generated Verilog (Verilator) on the first
``--rtl-images`` test images, and optionally builds it for boards (benchmarks/bench_boards.py).
Not part of the test suite (minutes).

    .venv/bin/python benchmarks/bench_nir_mnist.py [--hidden 64] [--epochs 3] [-T 16] [-k 4]
        [--weight-bits 8] [--rtl-images 100] [--out runs/nir_mnist] [--boards ulx3s-85f icebreaker]

The iCEBreaker (UP5K: 30 block RAMs of 4 Kbit) holds the 784 × H weights only for a small H at
a few bits, e.g. ``--hidden 24 --weight-bits 4 --lanes 2 --boards icebreaker``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from snnfpga import reference, sim
from snnfpga.convert.data import load_dataset
from snnfpga.ir import save
from snnfpga.ir.frames import quantize_frames
from snnfpga.nir_io import import_nir, load_graph, read_nir, simulate_float

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("-T", "--timesteps", type=int, default=16)
    ap.add_argument("--train-steps", type=int, default=8, help="BPTT steps while training")
    ap.add_argument("-k", "--leak-shift", type=int, default=4, help="β = 1 − 2^-k")
    ap.add_argument("--rtl-images", type=int, default=100)
    ap.add_argument("--lanes", type=int, default=4)
    ap.add_argument("--weight-bits", type=int, default=8, help="integer weight bits of the import")
    ap.add_argument("--input-bits", type=int, default=8, help="pixel bits of the import")
    ap.add_argument("--out", default=str(ROOT / "runs" / "nir_mnist"))
    ap.add_argument("--boards", nargs="*", default=[])
    args = ap.parse_args(argv)

    import nir
    import snntorch as snn
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset("mnist10k")
    H, T = args.hidden, args.timesteps
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(784, H),
        snn.Leaky(beta=torch.full((H,), 1 - 2.0 ** -args.leak_shift), threshold=torch.ones(H), init_hidden=True,
                  reset_delay=False, learn_beta=False),
        torch.nn.Linear(H, 10))

    def run(x, steps):
        utils.reset(model)
        return sum(model(x) for _ in range(steps))

    x = torch.tensor(data.train_x, dtype=torch.float32)
    y = torch.tensor(data.train_y)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    t0 = time.time()
    for epoch in range(args.epochs):
        for idx in torch.randperm(len(y)).split(128):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(run(x[idx], args.train_steps), y[idx]).backward()
            opt.step()
        print(f"epoch {epoch + 1}/{args.epochs} ({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    tx, ty = data.test_x, data.test_y
    with torch.no_grad():
        fw = run(torch.tensor(tx, dtype=torch.float32), T).argmax(1).numpy()
    path = out / "snntorch_lif.nir"
    nir.write(str(path), export_to_nir(model, torch.zeros(1, 1, 28, 28), ignore_dims=[0]))

    r = import_nir(path, tx, ty, timesteps=T, dataset="mnist10k", name="snntorch_lif",
                   weight_bits=args.weight_bits, input_bits=args.input_bits)
    ours = simulate_float(read_nir(load_graph(path)), tx, T, snapped=False).argmax(1)
    json_path, _ = save(r.net, out / "snntorch_lif.snn.json")

    n = args.rtl_images
    frames = quantize_frames(r.net, tx[:n])
    ref = reference.simulate(r.net, frames)
    b = sim.prepare(r.net, simulator="verilator", lanes=args.lanes)
    rep = sim.simulate(r.net, frames, build=b, seed=0)
    rtl_acc = float((np.array(rep["rtl_classes"]) == ty[:n]).mean())
    res = {
        "network": f"784-{H}(LIF k={args.leak_shift})-10, T={T}", "weight_bits": args.weight_bits,
        "input_bits": args.input_bits, "lanes": args.lanes, "test_images": len(ty),
        "framework_snntorch": float((fw == ty).mean()), "float_ours": r.float_accuracy,
        "agreement_framework_vs_ours": float((fw == ours).mean()), "int_ref": r.int_accuracy,
        "int_ref_on_rtl_images": float((ref.classes == ty[:n]).mean()), "rtl": rtl_acc, "rtl_images": n,
        "rtl_mismatching_images": rep["mismatching_images"], "cycles_per_frame": rep["cycles_per_frame"],
        "spikes_per_frame": r.spikes_per_frame, "ir": str(json_path),
    }
    print(json.dumps(res, indent=1))
    (out / "bench_nir_mnist.json").write_text(json.dumps(res, indent=1))
    if args.boards:
        import bench_boards  # benchmarks/ on sys.path when run as a script

        bench_boards.main([str(json_path), "--boards", *args.boards, "--lanes", str(args.lanes),
                           "--json", str(out / "boards.json")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
