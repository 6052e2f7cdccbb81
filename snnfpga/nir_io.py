"""NIR in and out: read a Neuromorphic Intermediate Representation graph into our Network IR, and
write a rate-coded Network IR as NIR (docs/nir.md holds the semantics we read NIR with).

Import reads a chain ``Input → [Flatten] → (Affine|Linear|Conv2d → IF|LIF | SumPool2d | AvgPool2d
| Flatten)* → Affine|Linear → [IF|LIF] → Output`` into float layers (convert.graph.FloatLayer),
simulates it in float by our reading of NIR, quantizes it with the converter's quantizer
(:func:`snnfpga.convert.quantize.quantize`) and reports both accuracies. A graph this module wrote
itself carries ``snnfpga`` metadata and is read back exactly (``import(export(x)) == x``).
Anything the hardware cannot do is an :class:`NIRUnsupported` naming the NIR node and its type.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BadFile, BadOption, MissingTool, Unsupported
from .ir import InputSpec, Layer, Network, RateNeuron

__all__ = ["NIRUnsupported", "NirChain", "ImportResult", "ExportResult", "read_nir", "load_graph",
           "simulate_float", "to_network", "import_nir", "network_to_nir", "export_nir", "add_parser",
           "DEFAULT_DT", "LEAK_TOLERANCE", "snap_leak"]

#: time step of the forward-Euler reading of a LIF's ``tau`` (snnTorch's export uses 1e-4)
DEFAULT_DT = 1e-4
#: default largest ``|β − (1 − 2^-k)|`` accepted as that shift β without comment
LEAK_TOLERANCE = 0.01
#: slack on every leak tolerance: files store τ in float32 (snnTorch), so 1 − dt/τ carries ~1e-7
BETA_ROUNDING = 1e-6
#: the ``metadata`` key of the graphs this module writes (the integer network, for exact re-import)
META = "snnfpga"


class NIRUnsupported(Unsupported):
    """A NIR graph outside what the hardware runs; the message names the node and its type."""

    def __init__(self, node: str, kind: str, problem: str):
        self.node, self.kind = node, kind
        super().__init__(f"NIR node {node!r} ({kind}): {problem}")


def _nir():
    try:
        import nir
    except ImportError as e:  # pragma: no cover - nir is a requirement
        raise MissingTool("NIR import/export needs the 'nir' package: pip install nir==1.0.8") from e
    return nir


def _arr(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _pair(node: str, kind: str, v: Any, what: str) -> int:
    a = np.atleast_1d(np.asarray(v)).astype(np.int64).ravel()
    if a.size == 0 or not (a == a[0]).all():
        raise NIRUnsupported(node, kind, f"{what} must be square/symmetric, not {a.tolist()}")
    return int(a[0])


# --------------------------------------------------------------------------- the float reading

@dataclass
class FloatNeuron:
    """A layer's neuron after normalisation to threshold 1: ``u ← β·u + I``, fire ``u ≥ 1``,
    subtract 1. ``beta_nir`` is what the file says, ``leak_shift`` the β = 1 − 2^-k used."""

    node: str
    kind: str
    beta_nir: float
    leak_shift: int | None

    @property
    def beta(self) -> float:
        return 1.0 if self.leak_shift is None else 1.0 - 2.0 ** -self.leak_shift


@dataclass
class NirChain:
    """A NIR graph read as a chain of float layers (``convert.graph.FloatLayer``, weights in
    membrane units where each neuron's threshold is 1) and a neuron per hidden weighted layer."""

    input_shape: tuple[int, ...]
    layers: list  # convert.graph.FloatLayer
    neurons: dict[int, FloatNeuron] = field(default_factory=dict)
    #: weighted layer -> the SumPool2d k² its weights took (our pool layer is a mean)
    pool_factor: dict[int, float] = field(default_factory=dict)
    #: the NIR node (name, type) each layer comes from
    origin: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] | None = None


def snap_leak(beta: float, node: str, kind: str, *, tolerance: float = LEAK_TOLERANCE,
              policy: str = "nearest") -> tuple[int | None, str | None]:
    """The shift k whose β = 1 − 2^-k is nearest ``beta`` (None: β = 1, no leak), and a note
    when it is farther than ``tolerance``; ``policy="refuse"`` raises instead."""
    if not 0.0 < beta <= 1.0:
        raise NIRUnsupported(node, kind, f"leak factor beta={beta:.6g} is outside (0, 1]")
    if beta == 1.0:
        return None, None
    from .ir.validate import MAX_LEAK_SHIFT

    k = min(MAX_LEAK_SHIFT, max(1, round(-math.log2(1.0 - beta))))
    # the nearest of k-1, k, k+1 in β itself (the log rounding is not the β rounding)
    k = min((c for c in (k - 1, k, k + 1) if 1 <= c <= MAX_LEAK_SHIFT), key=lambda c: abs(beta - (1 - 2.0 ** -c)))
    snapped = 1.0 - 2.0 ** -k
    if abs(beta - snapped) <= tolerance + BETA_ROUNDING:
        return k, None
    if beta > 1 - 2.0 ** -MAX_LEAK_SHIFT:
        return None, f"{node} ({kind}): beta={beta:.6g} is within 2^-{MAX_LEAK_SHIFT} of 1: read as IF"
    msg = (f"leak factor beta={beta:.6g} is not within {tolerance:g} of a shift leak 1 - 2^-k "
           f"(nearest: k={k}, beta={snapped:.6g})")
    if policy == "refuse":
        raise NIRUnsupported(node, kind, msg + "; --leak nearest converts it to that")
    return k, f"{node} ({kind}): {msg}: converted to k={k}"


def load_graph(path: str | Path):
    """``nir.read`` with a missing or unreadable file as a :class:`BadFile`."""
    nir = _nir()
    p = Path(path)
    if not p.is_file():
        raise BadFile(f"{p}: no such NIR file")
    try:
        return nir.read(str(p))
    except Exception as e:  # h5py/nir raise many types on a damaged file
        raise BadFile(f"{p}: not a readable NIR file ({type(e).__name__}: {e})") from e


def _chain_order(graph) -> list[str]:
    """The node names from the Input to the Output; every other shape is NIRUnsupported."""
    nir = _nir()
    nodes = graph.nodes
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in graph.edges:
        if a not in nodes or b not in nodes:
            raise BadFile(f"NIR edge ({a!r}, {b!r}) names a node that does not exist")
        succ[a].append(b)
        pred[b].append(a)
    for name, node in nodes.items():
        kind = type(node).__name__
        if isinstance(node, nir.NIRGraph):
            raise NIRUnsupported(name, kind, "a subgraph (a recurrent layer such as RLeaky/RSynaptic): "
                                             "recurrent edges are not supported by the hardware")
        if type(node).__name__ == "Delay":
            raise NIRUnsupported(name, kind, "delays are not supported by the hardware")
    # recurrence first (a cycle: an edge back to a node on the depth-first path), so it is named
    # as such rather than as a node with two inputs
    state: dict[str, int] = {}  # 1: on the path, 2: done
    for root in nodes:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(succ[root]))]
        while stack:
            a, it = stack[-1]
            b = next(it, None)
            if b is None:
                state[a] = 2
                stack.pop()
            elif state.get(b) == 1:
                raise NIRUnsupported(b, type(nodes[b]).__name__, f"recurrent edge {a!r} → {b!r}: the hardware "
                                                                 "runs feed-forward networks only")
            elif b not in state:
                state[b] = 1
                stack.append((b, iter(succ[b])))
    inputs = [n for n, node in nodes.items() if isinstance(node, nir.Input)]
    if len(inputs) != 1:
        raise NIRUnsupported(inputs[1] if inputs else "<graph>", "Input", f"the graph must have one Input, not {len(inputs)}")
    order, seen, cur = [], set(), inputs[0]
    while True:
        if cur in seen:
            raise NIRUnsupported(cur, type(nodes[cur]).__name__, f"recurrent edge {order[-1]!r} → {cur!r}: "
                                                                  "the hardware runs feed-forward chains only")
        seen.add(cur)
        order.append(cur)
        if len(pred[cur]) > 1:
            raise NIRUnsupported(cur, type(nodes[cur]).__name__, f"{len(pred[cur])} inputs ({', '.join(pred[cur])}): "
                                                                  "merges (recurrence, residual sums) are not supported")
        if isinstance(nodes[cur], nir.Output):
            break
        if len(succ[cur]) != 1:
            raise NIRUnsupported(cur, type(nodes[cur]).__name__, f"{len(succ[cur])} outgoing edges: the hardware "
                                                                  "runs a chain (one edge from each node to the next)")
        cur = succ[cur][0]
    rest = sorted(set(nodes) - seen)
    if rest:
        raise NIRUnsupported(rest[0], type(nodes[rest[0]]).__name__, "is not on the chain from the Input to the Output")
    return order


def read_nir(graph, *, dt: float = DEFAULT_DT, leak: str = "nearest",
             tolerance: float = LEAK_TOLERANCE) -> NirChain:
    """Our reading of a NIR graph (docs/nir.md) as float layers with thresholds normalised to 1."""
    import torch

    from .convert.graph import FloatLayer

    nir = _nir()
    order = _chain_order(graph)
    nodes = graph.nodes
    shape = tuple(int(s) for s in _arr(nodes[order[0]].input_type["input"]).astype(np.int64))
    chain = NirChain(input_shape=shape, layers=[])
    pending_pool = 1.0  # SumPool2d's k² that the next weighted layer's weights take (our pool is a mean)
    for name in order[1:-1]:
        node = nodes[name]
        kind = type(node).__name__
        if isinstance(node, (nir.Affine, nir.Linear)):
            w = _arr(node.weight)
            b = _arr(node.bias) if isinstance(node, nir.Affine) else np.zeros(w.shape[0])
            n_in = int(np.prod(shape))
            if len(shape) > 1 and w.ndim == 2 and w.shape[1] == n_in:  # an implicit flatten (C order)
                chain.layers.append(FloatLayer(kind="flatten", in_shape=shape, out_shape=(n_in,)))
                chain.origin.append((name, kind))
                shape = (n_in,)
            if w.ndim != 2 or w.shape[1] != n_in:
                raise NIRUnsupported(name, kind, f"weight {list(w.shape)} does not take the {list(shape)} input "
                                                 "(a Flatten is needed before a Linear on images)")
            chain.layers.append(FloatLayer(kind="dense", in_shape=(n_in,), out_shape=(w.shape[0],),
                                           weight=torch.tensor(w * pending_pool), bias=torch.tensor(b),
                                           where=f"NIR node {name!r} ({kind})"))
            chain.origin.append((name, kind))
            shape = (w.shape[0],)
        elif isinstance(node, nir.Conv2d):
            w = _arr(node.weight)
            if w.ndim != 4 or w.shape[2] != w.shape[3]:
                raise NIRUnsupported(name, kind, f"kernel {list(w.shape[2:])} must be square")
            if _pair(name, kind, node.dilation, "dilation") != 1 or int(node.groups) != 1:
                raise NIRUnsupported(name, kind, "dilation and groups must be 1")
            if len(shape) != 3 or shape[0] != w.shape[1]:
                raise NIRUnsupported(name, kind, f"weight {list(w.shape)} does not take the {list(shape)} input")
            k, s = w.shape[2], _pair(name, kind, node.stride, "stride")
            pad = node.padding
            if isinstance(pad, str):
                if pad == "valid":
                    pad = 0
                elif pad == "same" and s == 1 and k % 2 == 1:
                    pad = k // 2
                else:
                    raise NIRUnsupported(name, kind, f"padding {pad!r} is not supported (give it in pixels)")
            p = _pair(name, kind, pad, "padding")
            out = (w.shape[0], (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1)
            b = _arr(node.bias) if node.bias is not None else np.zeros(w.shape[0])
            chain.layers.append(FloatLayer(kind="conv2d", in_shape=shape, out_shape=out,
                                           weight=torch.tensor(w * pending_pool), bias=torch.tensor(b * np.ones(w.shape[0])),
                                           kernel=k, stride=s, padding=p, where=f"NIR node {name!r} ({kind})"))
            chain.origin.append((name, kind))
            shape = out
        elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            if len(shape) != 3:
                raise NIRUnsupported(name, kind, f"pools images, not a {list(shape)} input")
            k = _pair(name, kind, node.kernel_size, "kernel_size")
            s = _pair(name, kind, node.stride, "stride")
            p = _pair(name, kind, node.padding, "padding")
            out = (shape[0], (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1)
            chain.layers.append(FloatLayer(kind="avgpool2d", in_shape=shape, out_shape=out, kernel=k, stride=s,
                                           padding=p, where=f"NIR node {name!r} ({kind})"))
            chain.origin.append((name, kind))
            if isinstance(node, nir.SumPool2d):
                pending_pool *= k * k  # our pool is a mean: the sum's k² goes into the next weights
            shape = out
            continue
        elif isinstance(node, nir.Flatten):
            nd = len(shape)
            start = node.start_dim % nd if nd else 0
            end = node.end_dim % nd if nd else 0
            if nd > 1 and not (start == 0 and end == nd - 1):
                raise NIRUnsupported(name, kind, f"flattens dims {node.start_dim}..{node.end_dim} of {list(shape)}; "
                                                 "only flattening a whole frame is supported")
            if nd > 1:
                out = (int(np.prod(shape)),)
                chain.layers.append(FloatLayer(kind="flatten", in_shape=shape, out_shape=out,
                                               where=f"NIR node {name!r} ({kind})"))
                chain.origin.append((name, kind))
                shape = out
            continue
        elif isinstance(node, (nir.IF, nir.LIF)):
            if not chain.layers or not chain.layers[-1].weighted or len(chain.layers) - 1 in chain.neurons:
                prev = "the input" if not chain.layers else f"a {chain.layers[-1].kind} layer"
                raise NIRUnsupported(name, kind, f"follows {prev}: neurons must follow an Affine, Linear or Conv2d "
                                                 "(one neuron per weighted layer)")
            chain.neurons[len(chain.layers) - 1] = _neuron(name, node, chain, shape, dt, leak, tolerance)
            continue
        else:
            raise NIRUnsupported(name, kind, "is not supported (supported: Input, Output, Affine, Linear, Conv2d, "
                                             "IF, LIF, SumPool2d, AvgPool2d, Flatten)")
        chain.pool_factor[len(chain.layers) - 1] = pending_pool
        pending_pool = 1.0
    weighted = [i for i, fl in enumerate(chain.layers) if fl.weighted]
    if not weighted:
        raise NIRUnsupported(order[-1], "Output", "the graph has no Affine, Linear or Conv2d layer")
    if chain.layers[-1] is not chain.layers[weighted[-1]]:
        raise NIRUnsupported(*chain.origin[-1], "the last layer must be weighted (our output layer "
                                                "accumulates its membrane)")
    if weighted[-1] in chain.neurons:
        dropped = chain.neurons.pop(weighted[-1])
        chain.notes.append(f"{dropped.node} ({dropped.kind}) after the last weighted layer is dropped: the class "
                           "is the argmax of the output layer's accumulated input (no spikes), not of its spike count")
    for i in weighted[:-1]:
        if i not in chain.neurons:
            raise NIRUnsupported(*chain.origin[i], "a hidden weighted layer must be followed by an IF or LIF neuron")
    for i in chain.neurons:
        chain.layers[i].relu = True
    chain.notes += [n for n in (getattr(x, "_note", None) for x in chain.neurons.values()) if n]
    meta = getattr(graph, "metadata", None) or {}
    if META in meta:
        chain.meta = _decode_meta(meta[META])
    return chain


def _neuron(name: str, node, chain: NirChain, shape: tuple[int, ...], dt: float, leak: str,
            tolerance: float) -> FloatNeuron:
    """Fold a neuron's ``r``, gain and threshold into the weighted layer before it (threshold 1)."""
    import torch

    nir = _nir()
    kind = type(node).__name__
    layer = chain.layers[-1]

    def param(x: Any, what: str) -> np.ndarray:
        a = _arr(x)
        try:
            a = np.broadcast_to(a.reshape(a.shape if a.size != 1 else ()), shape).astype(np.float64)
        except ValueError:
            raise NIRUnsupported(name, kind, f"{what} has shape {list(a.shape)}, not the layer's {list(shape)}") from None
        if len(shape) == 3:  # a convolution shares weights: one value per channel
            if not (a == a[:, :1, :1]).all():
                raise NIRUnsupported(name, kind, f"{what} differs within a channel of a convolution")
            return a[:, 0, 0]
        return a

    theta = param(node.v_threshold, "v_threshold")
    if (theta <= 0).any() or not np.isfinite(theta).all():
        raise NIRUnsupported(name, kind, f"v_threshold must be positive, not {theta.min():.6g}")
    v_reset = param(node.v_reset, "v_reset") if node.v_reset is not None else np.zeros_like(theta)
    if (v_reset != 0).any():
        raise NIRUnsupported(name, kind, f"v_reset={v_reset[v_reset != 0][0]:.6g}: only 0 is supported "
                                         "(read as reset by subtraction of the threshold, docs/nir.md)")
    r = param(node.r, "r")
    bias_add = np.zeros_like(theta)
    if isinstance(node, nir.LIF):
        tau = param(node.tau, "tau")
        if (tau <= 0).any():
            raise NIRUnsupported(name, kind, f"tau must be positive, not {tau.min():.6g}")
        betas = 1.0 - dt / tau
        if not np.allclose(betas, betas.flat[0], rtol=0, atol=1e-9):
            raise NIRUnsupported(name, kind, f"leak factors beta = 1 - dt/tau differ across neurons "
                                             f"({betas.min():.6g}..{betas.max():.6g}): one leak per layer")
        beta = float(betas.flat[0])
        gain = r * dt / tau
        bias_add = dt / tau * param(node.v_leak, "v_leak")
    else:
        beta, gain = 1.0, r
    k, note = snap_leak(beta, name, kind, tolerance=tolerance, policy=leak)
    f = gain / theta
    view = (-1,) + (1,) * (layer.weight.dim() - 1)
    layer.weight = layer.weight * torch.tensor(f).view(view)
    layer.bias = layer.bias * torch.tensor(f) + torch.tensor(bias_add / theta)
    n = FloatNeuron(node=name, kind=kind, beta_nir=beta, leak_shift=k)
    n._note = note  # type: ignore[attr-defined]
    return n


def simulate_float(chain: NirChain, x: np.ndarray, timesteps: int, *, snapped: bool = True,
                   batch: int = 1000) -> np.ndarray:
    """Output scores ``(N, classes)``: our float reading (docs/nir.md) over T steps, direct input
    (the frame is the input current every step); ``snapped`` uses the shift βs the IR gets,
    else the file's βs."""
    import torch

    from .convert.graph import apply_layer

    outs = []
    for i0 in range(0, len(x), batch):
        xb = torch.tensor(np.asarray(x[i0:i0 + batch], dtype=np.float64)).reshape((-1,) + chain.input_shape)
        u: dict[int, torch.Tensor] = {}
        out = None
        cache: dict[int, torch.Tensor] = {}
        for _ in range(timesteps):
            cur, const = xb, True
            for i, fl in enumerate(chain.layers):
                if const and i in cache:
                    cur = cache[i]
                elif fl.kind == "flatten":
                    cur = cur.reshape(cur.shape[0], -1)
                else:
                    cur = apply_layer(fl, cur)
                if const:
                    cache[i] = cur
                if not fl.weighted:
                    continue
                if i not in chain.neurons:  # the output layer accumulates
                    out = cur if out is None else out + cur
                    break
                n = chain.neurons[i]
                beta = n.beta if snapped else n.beta_nir
                v = cur if i not in u else beta * u[i] + cur
                s = v >= 1.0
                u[i] = torch.where(s, v - 1.0, v)
                cur, const = s.to(v.dtype), False
        outs.append(out.reshape(out.shape[0], -1).numpy())
    return np.concatenate(outs)


# --------------------------------------------------------------------------- NIR → Network IR

def to_network(chain: NirChain, *, name: str, timesteps: int, weight_bits: int = 8, input_bits: int = 8,
               provenance: dict[str, Any] | None = None) -> Network:
    """Quantize the float reading with the converter's quantizer; membranes start at 0 (NIR's
    initial state) and LIF layers get their ``leak_shift``."""
    from .convert.quantize import quantize
    from .convert.snn import FloatSNN
    from .ir.bounds import layer_acc_bits
    from .ir.validate import validate

    if chain.meta is not None:
        return _exact_network(chain)
    snn = FloatSNN(chain.layers, "rate", timesteps)  # rate_theta: λ = 1 (thresholds are normalised)
    net = quantize(snn, name=name, weight_bits=weight_bits, input_bits=input_bits, provenance=provenance)
    offset = 1 if chain.layers[0].kind == "flatten" else 0
    for i, n in chain.neurons.items():
        layer = net.layers[i - offset]
        layer.neuron = RateNeuron(theta=layer.neuron.theta, v0=0, leak_shift=n.leak_shift)
    for k, layer in enumerate(net.layers):
        if layer.weighted:
            layer.acc_bits = layer_acc_bits(net, k)
    validate(net)
    return net


@dataclass
class ImportResult:
    """What ``snnfpga import`` did: the network, accuracies on the test split, and notes."""

    net: Network
    images: int
    float_accuracy: float        # our float reading with the file's βs
    float_accuracy_snapped: float  # ... with the shift βs the IR uses
    int_accuracy: float
    spikes_per_frame: float
    notes: list[str]


def import_nir(path: str | Path, x: np.ndarray, y: np.ndarray, *, timesteps: int = 32, weight_bits: int = 8,
               input_bits: int = 8, dt: float = DEFAULT_DT, leak: str = "nearest",
               tolerance: float = LEAK_TOLERANCE, name: str | None = None, dataset: str = "") -> ImportResult:
    """Read ``path``, quantize, and measure float and integer accuracy on ``(x, y)``."""
    from .convert.pipeline import evaluate_int

    graph = load_graph(path)
    chain = read_nir(graph, dt=dt, leak=leak, tolerance=tolerance)
    size = int(np.prod(chain.input_shape))
    if int(np.prod(x.shape[1:])) != size:
        raise BadOption(f"the NIR graph takes {list(chain.input_shape)} inputs, the data set has "
                        f"{list(x.shape[1:])} images")
    if chain.meta is not None:
        try:
            timesteps = int(chain.meta["timesteps"])
        except (KeyError, TypeError, ValueError) as e:
            raise BadFile(f"{path}: NIR metadata {META!r} has no valid 'timesteps' ({e})") from e
    name = name or Path(path).name.split(".")[0]
    prov = {"source": "nir", "nir_file": Path(path).name, "dataset": dataset, "nir_dt": dt,
            "nir_versions": _versions()}
    net = to_network(chain, name=name, timesteps=timesteps, weight_bits=weight_bits, input_bits=input_bits,
                     provenance=prov)
    f_nir = float((simulate_float(chain, x, net.timesteps, snapped=False).argmax(1) == y).mean())
    f_snap = f_nir
    if any(n.beta != n.beta_nir for n in chain.neurons.values()):
        f_snap = float((simulate_float(chain, x, net.timesteps, snapped=True).argmax(1) == y).mean())
    res = evaluate_int(net, x, y)
    if chain.meta is None:
        net.provenance.update(float_accuracy_nir=f_nir, float_accuracy_snapped=f_snap, int_accuracy=res["accuracy"],
                              images=len(y))
    return ImportResult(net=net, images=len(y), float_accuracy=f_nir, float_accuracy_snapped=f_snap,
                        int_accuracy=res["accuracy"], spikes_per_frame=res["spikes_per_frame"], notes=chain.notes)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("nir",):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            pass
    return out


# --------------------------------------------------------------------------- Network IR → NIR

@dataclass
class ExportResult:
    path: Path
    notes: list[str]


def network_to_nir(net: Network):
    """A rate-coded chain as a NIR graph: in float units (``scale``) so that our reading of it
    is the integer network (membranes starting at 0), plus ``snnfpga`` metadata for exact re-import."""
    nir = _nir()
    if net.coding != "rate":
        raise Unsupported(f"network {net.name!r} is {net.coding}-coded: NIR has no primitive for TTFS or "
                          "SC-TTFS spike-time codes, only rate-coded (IF/LIF) networks can be exported")
    if net.is_graph:
        raise Unsupported(f"network {net.name!r} is a graph (residual add): export supports chains only")
    if net.input.input_coding != "direct":
        raise Unsupported(f"network {net.name!r} encodes its input as spikes: export supports direct input only")
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(net.input.shape))}
    edges, prev = [], "input"
    s_in = net.input.scale  # float value of one unit of the current layer's input
    notes = []
    lmeta = []
    for i, layer in enumerate(net.layers):
        name = f"{i}_{layer.kind}"
        m: dict[str, Any] = {"kind": layer.kind}
        if layer.weighted:
            s_v = layer.scale
            w = layer.weight.astype(np.float64) * (s_v / s_in)
            b = layer.bias.astype(np.float64) * s_v
            if layer.kind == "dense":
                nodes[name] = nir.Affine(weight=w, bias=b)
            else:
                nodes[name] = nir.Conv2d(input_shape=tuple(layer.in_shape[1:]), weight=w, stride=layer.stride,
                                         padding=layer.padding, dilation=1, groups=1, bias=b)
            m.update(weight_bits=layer.weight_bits, acc_bits=layer.acc_bits, scale=layer.scale,
                     out_scale=layer.out_scale)
            edges.append((prev, name))
            prev = name
            n = layer.neuron
            if n is not None:
                m.update(theta=n.theta, v0=n.v0, leak_shift=-1 if n.leak_shift is None else n.leak_shift)
                if n.v0:
                    notes.append(f"layer {i}: v0={n.v0} (membranes start at v0); NIR has no initial membrane, so "
                                 "other readers start at 0 (kept in the snnfpga metadata)")
                shp = np.array(layer.out_shape)
                th = np.full(shp, n.theta * s_v)
                nname = f"{i}_neuron"
                if n.leak_shift is None:
                    nodes[nname] = nir.IF(r=np.ones(shp), v_threshold=th, v_reset=np.zeros(shp))
                else:
                    tau = DEFAULT_DT * 2.0 ** n.leak_shift  # β = 1 − dt/τ = 1 − 2^-k, gain r·dt/τ = 1
                    nodes[nname] = nir.LIF(tau=np.full(shp, tau), r=np.full(shp, 2.0 ** n.leak_shift),
                                           v_leak=np.zeros(shp), v_threshold=th, v_reset=np.zeros(shp))
                edges.append((prev, nname))
                prev = nname
                s_in = 1.0  # a NIR spike is worth 1
        elif layer.kind == "avgpool2d":  # our avgpool2d is a sum pool
            nodes[name] = nir.SumPool2d(kernel_size=np.array([layer.kernel] * 2), stride=np.array([layer.stride] * 2),
                                        padding=np.array([layer.padding] * 2))
            edges.append((prev, name))
            prev = name
        elif layer.kind == "flatten":
            nodes[name] = nir.Flatten(input_type={"input": np.array(layer.in_shape)}, start_dim=0, end_dim=-1)
            edges.append((prev, name))
            prev = name
        else:
            raise Unsupported(f"layer {i} ({layer.kind}) has no NIR export")
        lmeta.append(m)
    nodes["output"] = nir.Output(output_type=np.array(net.output_layer.out_shape))
    edges.append((prev, "output"))
    meta = {"name": net.name, "coding": net.coding, "timesteps": net.timesteps, "format_version": net.format_version,
            "input": {"shape": list(net.input.shape), "bits": net.input.bits, "signed": net.input.signed,
                      "scale": net.input.scale},
            "layers": lmeta, "provenance": net.provenance}
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={META: json.dumps(meta, sort_keys=True)})
    return graph, notes


def _decode_meta(raw: Any) -> dict[str, Any]:
    if isinstance(raw, np.ndarray):
        raw = raw.item() if raw.shape == () else raw.tolist()
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        meta = json.loads(raw)
    except (TypeError, ValueError) as e:
        raise BadFile(f"NIR metadata {META!r} is not the JSON snnfpga writes ({e})") from e
    if not isinstance(meta, dict):
        raise BadFile(f"NIR metadata {META!r} is not the JSON snnfpga writes")
    return meta


def _exact_network(chain: NirChain) -> Network:
    """The integer network a graph written by :func:`network_to_nir` holds, exactly."""
    from .ir.validate import validate

    meta = chain.meta
    try:
        inp = meta["input"]
        spec = InputSpec(shape=tuple(inp["shape"]), bits=int(inp["bits"]), signed=bool(inp["signed"]),
                         scale=float(inp["scale"]))
        layers: list[Layer] = []
        fls = [fl for fl in chain.layers]
        if len(fls) != len(meta["layers"]):
            raise BadFile(f"NIR metadata {META!r} lists {len(meta['layers'])} layers, the graph has {len(fls)}")
        s_in = spec.scale
        for i, (fl, m) in enumerate(zip(fls, meta["layers"])):
            if fl.kind != m["kind"]:
                raise BadFile(f"NIR metadata {META!r}: layer {i} is {m['kind']}, the graph has {fl.kind}")
            if fl.weighted:
                s_v = float(m["scale"])
                neuron = None
                gain = np.ones(fl.out_shape[0])
                if "theta" in m:
                    theta = int(m["theta"])
                    gain = 1.0 / (theta * s_v)  # read_nir divided by the threshold θ·s_v
                    k = int(m["leak_shift"])
                    neuron = RateNeuron(theta=theta, v0=int(m["v0"]), leak_shift=None if k < 0 else k)
                view = (-1,) + (1,) * (fl.weight.dim() - 1)
                w = fl.weight.numpy() / np.broadcast_to(gain, (fl.out_shape[0],)).reshape(view)
                w = w / chain.pool_factor.get(i, 1.0)
                b = fl.bias.numpy() / gain
                layers.append(Layer(kind=fl.kind, in_shape=tuple(fl.in_shape), out_shape=tuple(fl.out_shape),
                                    weight=np.rint(w * s_in / s_v).astype(np.int64),
                                    bias=np.rint(b / s_v).astype(np.int64), weight_bits=int(m["weight_bits"]),
                                    acc_bits=int(m["acc_bits"]), neuron=neuron, kernel=fl.kernel, stride=fl.stride,
                                    padding=fl.padding, scale=s_v, out_scale=float(m["out_scale"])))
                s_in = 1.0 if neuron is not None else s_in
            else:
                layers.append(Layer(kind=fl.kind, in_shape=tuple(fl.in_shape), out_shape=tuple(fl.out_shape),
                                    kernel=fl.kernel, stride=fl.stride, padding=fl.padding))
        net = Network(name=str(meta["name"]), coding=str(meta["coding"]), timesteps=int(meta["timesteps"]),
                      input=spec, layers=layers, provenance=dict(meta["provenance"]),
                      format_version=int(meta["format_version"]))
    except (KeyError, TypeError, ValueError) as e:
        raise BadFile(f"NIR metadata {META!r} is incomplete or malformed ({type(e).__name__}: {e})") from e
    validate(net, where="NIR metadata")
    return net


def export_nir(net: Network, path: str | Path) -> ExportResult:
    """Write ``net`` as a NIR file (nothing is written if it cannot be exported)."""
    nir = _nir()
    graph, notes = network_to_nir(net)
    p = Path(path)
    tmp = p.with_name(p.name + ".part")
    nir.write(str(tmp), graph)
    tmp.replace(p)
    return ExportResult(path=p, notes=notes)


# --------------------------------------------------------------------------- command line

def add_parser(sub) -> None:
    """``snnfpga import`` and ``snnfpga export``."""
    from . import cli_types as types
    from .convert.data import DATASETS

    p = sub.add_parser("import", help="read a NIR graph (snnTorch, sinabs, Norse, ...) into a Network IR")
    p.add_argument("model", help="model.nir (HDF5, written by nir.write)")
    p.add_argument("-o", "--output", required=True, help="IR path (net.snn.json)")
    p.add_argument("--dataset", default="digits", choices=list(DATASETS))
    p.add_argument("--data-root", default=None)
    p.add_argument("--timesteps", "-T", type=types.timesteps, default=32,
                   help="time steps per frame (NIR does not record T; default 32)")
    p.add_argument("--weight-bits", type=types.weight_bits, default=8)
    p.add_argument("--input-bits", type=types.input_bits, default=8)
    p.add_argument("--images", type=types.count, default=None, help="first N test images (default: all)")
    p.add_argument("--dt", type=float, default=DEFAULT_DT,
                   help=f"time step for LIF tau: beta = 1 - dt/tau (default {DEFAULT_DT}, snnTorch's)")
    p.add_argument("--leak", choices=("nearest", "refuse"), default="nearest",
                   help="a LIF beta farther than --leak-tolerance from 1 - 2^-k: convert to the nearest (default) or refuse")
    p.add_argument("--leak-tolerance", type=float, default=LEAK_TOLERANCE,
                   help=f"largest |beta - (1 - 2^-k)| taken as is (default {LEAK_TOLERANCE})")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="write a rate-coded Network IR as a NIR graph")
    p.add_argument("model", help="net.snn.json")
    p.add_argument("-o", "--output", required=True, help="model.nir")
    p.set_defaults(func=cmd_export)


def cmd_import(args) -> int:
    from .convert.data import load_dataset
    from .ir import save

    if not (args.dt > 0 and math.isfinite(args.dt)):
        raise BadOption(f"--dt must be a positive number, not {args.dt!r}")
    if not (0 <= args.leak_tolerance < 1):
        raise BadOption(f"--leak-tolerance must be in [0, 1), not {args.leak_tolerance!r}")
    data = load_dataset(args.dataset, args.data_root)
    n = args.images or len(data.test_y)
    r = import_nir(args.model, data.test_x[:n], data.test_y[:n], timesteps=args.timesteps,
                   weight_bits=args.weight_bits, input_bits=args.input_bits, dt=args.dt, leak=args.leak,
                   tolerance=args.leak_tolerance, name=Path(args.output).name.split(".")[0], dataset=data.name)
    json_path, npz_path = save(r.net, args.output)
    for note in r.notes:
        print(f"note: {note}")
    leaks = {i: layer.neuron.leak_shift for i, layer in enumerate(r.net.layers) if layer.neuron is not None}
    print(f"{r.net.name}: rate T={r.net.timesteps} on {data.name} ({r.images} test images), leak shifts {leaks}")
    print(f"  float (NIR, our reading)      {100 * r.float_accuracy:6.2f}%")
    print(f"  float (shift leaks)           {100 * r.float_accuracy_snapped:6.2f}%")
    print(f"  integer reference             {100 * r.int_accuracy:6.2f}%  ({r.spikes_per_frame:.1f} spikes/frame)")
    print(f"→ {json_path} + {npz_path.name}")
    return 0


def cmd_export(args) -> int:
    from .ir import load

    r = export_nir(load(args.model), args.output)
    for note in r.notes:
        print(f"note: {note}")
    print(f"→ {r.path}")
    return 0
