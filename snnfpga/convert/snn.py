"""The float spiking network: IF rate coding, TTFS and SC-TTFS on the traced, BN-folded layers.

Stages carry the same names as the integer reference and the RTL: *decode* (charge),
*encode* (fire), *reset* (rate only). Thresholds follow the SC-TTFS paper,
``θ(t) = α·exp(−k·t + β)``; only ``α·e^β`` matters, so each threshold series is stored as
``log θ(0)`` and ``k`` per layer.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..ir.stage import Stage
from .graph import FloatLayer, apply_layer, branches, check_coding, sources

__all__ = ["ThresholdSeries", "FloatSNN", "INPUT_STAGE"]

INPUT_STAGE = Stage.INPUT


class ThresholdSeries(nn.Module):
    """``θ_e(t) = θ_e(0)·e^{−k_e t}`` and, for SC-TTFS, ``θ_c(t) = θ_c(0)·e^{−k_c t}``."""

    def __init__(self, theta_e0: float = 1.0, k_e: float = 0.5, theta_c0: float = 0.25, k_c: float = 0.5):
        super().__init__()
        self.log_e0 = nn.Parameter(torch.tensor(math.log(theta_e0), dtype=torch.float64))
        self.k_e = nn.Parameter(torch.tensor(float(k_e), dtype=torch.float64))
        self.log_c0 = nn.Parameter(torch.tensor(math.log(theta_c0), dtype=torch.float64))
        self.k_c = nn.Parameter(torch.tensor(float(k_c), dtype=torch.float64))

    def enc(self, T: int) -> torch.Tensor:
        return torch.exp(self.log_e0 - self.k_e.clamp(min=0) * torch.arange(T, dtype=torch.float64))

    def cal(self, T: int) -> torch.Tensor:
        return torch.exp(self.log_c0 - self.k_c.clamp(min=0) * torch.arange(T, dtype=torch.float64))

    def set(self, theta_e0: float, k_e: float, theta_c0: float, k_c: float) -> None:
        with torch.no_grad():
            self.log_e0.fill_(math.log(theta_e0))
            self.k_e.fill_(k_e)
            self.log_c0.fill_(math.log(theta_c0))
            self.k_c.fill_(k_c)

    def describe(self) -> dict:
        """The paper's parameters (α·e^β reported as α with β = 0: they are redundant)."""
        return {"alpha_e": math.exp(self.log_e0.item()), "beta_e": 0.0, "k_e": max(self.k_e.item(), 0.0),
                "alpha_c": math.exp(self.log_c0.item()), "beta_c": 0.0, "k_c": max(self.k_c.item(), 0.0)}


def lut_at(lut: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``lut[..., t]`` for spike times ``t`` (−1 reads entry 0); ``lut`` is ``(..., T)``,
    broadcastable against ``t.shape + (T,)``, so one call serves a layer or a batch of candidate LUTs."""
    idx = t.clamp(min=0)
    if lut.dim() == 1:  # one LUT: plain indexing (no (..., T) tensor, forward or backward)
        return lut[idx]
    if lut.dim() == t.dim() + 1 and lut.shape[-2] == 1 and lut.shape[:-2] == t.shape[:-1]:
        return torch.gather(lut.squeeze(-2), -1, idx)  # a LUT per row of t (the threshold grid search)
    lut = lut.expand(*t.shape, lut.shape[-1])
    return torch.gather(lut, -1, idx.unsqueeze(-1)).squeeze(-1)


def _non_increasing(lut: torch.Tensor) -> bool:
    return bool((lut[..., 1:] <= lut[..., :-1]).all())


def _count_at_most(lut: torch.Tensor, v: torch.Tensor) -> torch.Tensor | None:
    """``#{t : lut[..., t] <= v}`` per element of ``v`` by binary search (``torch.searchsorted``), for
    a non-increasing ``lut`` of shape ``(T,)`` or ``(C, 1, T)`` against ``v`` of shape ``(..., M)``;
    None when the LUT is not one of those (then :func:`_first` loops over t)."""
    if not _non_increasing(lut):
        return None
    seq = lut.flip(-1)
    if lut.dim() == 1:
        return torch.searchsorted(seq, v.contiguous(), right=True)
    if lut.dim() == 3 and lut.shape[1] == 1 and v.dim() == 2 and v.shape[0] in (1, lut.shape[0]):
        c, m = lut.shape[0], v.shape[1]
        return torch.searchsorted(seq[:, 0].contiguous(), v.expand(c, m).contiguous(), right=True)
    return None


def ttfs_encode(v: torch.Tensor, enc: torch.Tensor, cal: torch.Tensor | None):
    """Spike times (held constant: no gradient) of a membrane, exactly like the integer rule.

    ``enc``/``cal`` are ``(T,)`` or any shape ``(..., T)`` broadcastable against ``v.shape + (T,)``.

    A non-increasing LUT (every exponential series) is searched: ``v ≥ enc[t]`` holds on a suffix
    ``t ≥ T − n`` with ``n = #{t : enc[t] ≤ v}``, so ``t_e = T − n`` (no spike when ``n = 0``), and
    likewise ``t_c = max(T − #{t : cal[t] ≤ r}, t_e)``. Any other LUT takes the first ``t`` that
    satisfies the rule by a loop over t. Both are exact; the search is the fast one (the arg-max over
    a short last axis it replaces was most of the SNN's time on conv layers).
    """
    with torch.no_grad():
        T = enc.shape[-1]
        n = _count_at_most(enc, v)
        t_e = torch.where(n > 0, T - n, -1) if n is not None else _first(lambda t: v >= enc[..., t], T)
        if cal is None:
            return t_e, None
        fired = t_e >= 0
        r = v - lut_at(enc, t_e)
        m = _count_at_most(cal, r)
        if m is not None:
            t_c = torch.where((m > 0) & fired, torch.maximum(T - m, t_e), -1)
        else:
            r = torch.where(fired, r, -math.inf)
            t_c = _first(lambda t: (r >= cal[..., t]) & (t_e <= t), T)
        return t_e, t_c


def _first(hit, T: int) -> torch.Tensor:
    """``min{t < T : hit(t)}`` per element (int64), −1 where no ``t`` hits (``hit(t)``: a bool tensor)."""
    out = None
    for t in range(T - 1, -1, -1):
        h = hit(t)
        if out is None:
            out = torch.full(h.shape, -1, dtype=torch.long)
        out.masked_fill_(h, t)
    return out


def ttfs_decode(t_e: torch.Tensor, t_c: torch.Tensor | None, enc: torch.Tensor, cal: torch.Tensor | None) -> torch.Tensor:
    """The value an encoded neuron sends: ``θ_e(t_e) + θ_c(t_c)`` (differentiable in θ).

    A missing spike (time −1) reads the 0 put in front of the LUT: one lookup per spike kind."""
    val = lut_at(_zero_first(enc), t_e + 1)
    if t_c is not None:
        val = val + lut_at(_zero_first(cal), t_c + 1)
    return val


def _zero_first(lut: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros(lut.shape[:-1] + (1,), dtype=lut.dtype), lut], -1)


class FloatSNN(nn.Module):
    """A spiking network over float layers. ``coding`` ∈ {rate, ttfs, sc-ttfs}.

    The folded BN appears as a trainable per-channel ``gain`` and ``shift`` on each weighted
    layer (initialised to the identity), which fine-tuning trains through a straight-through
    gradient of the spike quantiser.
    """

    #: dtype of the convolutions (see :meth:`charge`); everything else is float64
    CONV_DTYPE = torch.float32

    def __init__(self, layers: list[FloatLayer], coding: str, timesteps: int, input_coding: str = "direct",
                 pow2: bool = False):
        super().__init__()
        self.pow2 = bool(pow2)  # power-of-two threshold series: k fixed at ln 2 (shift decode)
        if coding not in ("rate", "ttfs", "sc-ttfs"):
            raise ValueError(f"coding must be 'rate', 'ttfs' or 'sc-ttfs', not {coding!r}")
        if input_coding not in ("direct", "spikes"):
            raise ValueError(f"input_coding must be 'direct' or 'spikes', not {input_coding!r}")
        check_coding(layers, coding)  # max pooling: TTFS only
        self.layers = layers
        self.coding, self.T, self.input_coding = coding, int(timesteps), input_coding
        self.weighted = [i for i, layer in enumerate(layers) if layer.weighted]
        #: weighted layer -> the add whose membrane it charges (residual branches)
        self.branch_of = branches(layers)
        #: the layers that fire: hidden weighted layers that are no branch, and the adds
        self.firing = [i for i, layer in enumerate(layers)
                       if (layer.weighted and i != self.weighted[-1] and i not in self.branch_of) or layer.kind == "add"]
        self.gain = nn.ParameterDict()
        self.shift = nn.ParameterDict()
        for i in self.weighted:
            ch = layers[i].out_shape[0]
            self.gain[str(i)] = nn.Parameter(torch.ones(ch, dtype=torch.float64))
            self.shift[str(i)] = nn.Parameter(layers[i].bias.detach().clone())
        self.stages: list[Stage] = (([INPUT_STAGE] if input_coding == "spikes" else [])
                                    + [Stage(i) for i in self.firing])
        self.thresholds = nn.ModuleDict({s.name: ThresholdSeries() for s in self.stages})
        if self.pow2:  # keep the series exact powers of two: only the folded BN is fine-tuned
            for p in self.thresholds.parameters():
                p.requires_grad_(False)
        # rate coding: one threshold λ per stage (buffers; not fine-tuned)
        self.register_buffer("rate_theta", torch.ones(len(self.stages), dtype=torch.float64))
        self.ste = False  # straight-through gradient for v (switched on while fine-tuning)

    # ------------------------------------------------------------------ per-layer helpers
    def effective(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias of weighted layer ``i`` with the trainable gain/shift applied."""
        layer = self.layers[i]
        g = self.gain[str(i)]
        return layer.weight * g.view(-1, *([1] * (layer.weight.dim() - 1))), self.shift[str(i)]

    def charge(self, i: int, x: torch.Tensor, native: bool = False) -> torch.Tensor:
        """Decode stage: ``v = W x + b`` for weighted layer ``i``.

        Convolutions run in :attr:`CONV_DTYPE` (float32) and return float64, or float32 with
        ``native`` (rate coding keeps a conv layer's membranes in float32): PyTorch has no fast
        float64 convolution on CPU (about 5x slower forward, 15x backward), and the float SNN only
        approximates the integer network anyway. Dense layers compute in float64, as before.
        """
        w, b = self.effective(i)
        layer = self.layers[i]
        if layer.kind == "conv2d" and self.CONV_DTYPE != torch.float64:
            dt = self.CONV_DTYPE
            v = apply_layer(layer, x.to(dt), w.to(dt), b.to(dt))
            return v if native else v.double()
        return apply_layer(layer, x.to(w.dtype), w, b)

    def threshold(self, stage: Stage) -> ThresholdSeries:
        """The (SC-)TTFS threshold series of ``stage`` (module keys are stage names)."""
        return self.thresholds[Stage(stage).name]

    def rate_lambda(self, stage: Stage) -> float:
        return float(self.rate_theta[self.stages.index(stage)])

    def fire_ttfs(self, stage: Stage, v: torch.Tensor):
        th = self.threshold(stage)
        enc = th.enc(self.T)
        cal = th.cal(self.T) if self.coding == "sc-ttfs" else None
        t_e, t_c = ttfs_encode(v, enc, cal)
        out = ttfs_decode(t_e, t_c, enc, cal)
        if self.ste and self.training:
            vmax = (enc[0] + (cal[0] if cal is not None else 0)).detach()
            sv = v.clamp(0, float(vmax))
            out = out + (sv - sv.detach())
        return out, t_e, t_c

    # ------------------------------------------------------------------ forward passes
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]

    def run(self, x: torch.Tensor, record: bool = False):
        """Returns (output membrane, spikes per frame, per-stage records if ``record``)."""
        x = x.double()
        if self.coding == "rate":
            return self._run_rate(x, record)
        return self._run_ttfs(x, record)

    def _run_ttfs(self, x: torch.Tensor, record: bool, stop: Stage | None = None):
        spikes = torch.zeros(x.shape[0], dtype=torch.float64)
        rec = {}
        if self.input_coding == "spikes":
            flat = x.reshape(x.shape[0], -1)
            val, t_e, t_c = self.fire_ttfs(INPUT_STAGE, flat)
            spikes += (t_e >= 0).sum(1) + (0 if t_c is None else (t_c >= 0).sum(1))
            if record:
                rec[INPUT_STAGE] = flat.detach()
            if stop == INPUT_STAGE:
                return None, spikes, rec
            x = val.reshape(x.shape)
        vals = {-1: x}  # each layer's output: values, or a branch's membrane
        for i, layer in enumerate(self.layers):
            src = sources(self.layers, i)
            if layer.kind == "add":
                a, b = vals.pop(src[0]), vals.pop(src[1])
                v = (a.reshape(a.shape[0], -1) + b.reshape(b.shape[0], -1)).reshape(a.shape)
            elif not layer.weighted:
                vals[i] = apply_layer(layer, vals[src[0]])
                continue
            else:
                v = self.charge(i, vals[src[0]])
                if i == self.weighted[-1]:
                    return v.reshape(v.shape[0], -1), spikes, rec
                if i in self.branch_of:
                    vals[i] = v
                    continue
            if record:
                rec[Stage(i)] = v.detach()
            if stop == Stage(i):  # stage_inputs: the later stages are not needed
                return None, spikes, rec
            vals[i], t_e, t_c = self.fire_ttfs(Stage(i), v)
            spikes += (t_e >= 0).flatten(1).sum(1) + (0 if t_c is None else (t_c >= 0).flatten(1).sum(1))
        raise AssertionError("unreachable: the last layer is weighted")

    def constant_layers(self) -> set[int]:
        """Layers whose output is the same at every rate step: wiring of direct pixels (-1: the input)."""
        const = {-1} if self.input_coding == "direct" else set()
        for i, layer in enumerate(self.layers):
            if not layer.weighted and layer.kind != "add" and sources(self.layers, i)[0] in const:
                const.add(i)
        return const

    @torch.no_grad()
    def run_rate_steps(self, x: torch.Tensor, steps) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Rate coding: ``{t: (output membrane, spikes per frame)}`` after ``t`` steps, for every
        ``t`` in ``steps``, from one run of ``max(steps)`` steps. Each is exactly what :meth:`run`
        returns with ``T = t`` (the steps are the same operations in the same order), so a T sweep
        over networks that differ only in T runs once."""
        if self.coding != "rate":
            raise ValueError("run_rate_steps is for rate coding")
        return self._run_rate(x.double(), False, steps=tuple(sorted(set(int(t) for t in steps))))

    def _run_rate(self, x: torch.Tensor, record: bool, steps: tuple[int, ...] | None = None):
        n = x.shape[0]
        spikes = torch.zeros(n, dtype=torch.float64)
        v: dict[Stage, torch.Tensor] = {}
        const, cached = self.constant_layers(), {}
        snaps: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for step in range(self.T if steps is None else steps[-1]):
            if self.input_coding == "spikes":
                lam = self.rate_lambda(INPUT_STAGE)
                flat = x.reshape(n, -1)
                vin = v.get(INPUT_STAGE, torch.full_like(flat, lam / 2)) + flat
                s = (vin >= lam).double()
                v[INPUT_STAGE] = vin - s * lam
                spikes += s.sum(1)
                cur = (s * lam).reshape(x.shape)
            else:
                cur = x
            vals = {-1: cur}
            for i, layer in enumerate(self.layers):
                src = sources(self.layers, i)
                if layer.kind == "add":
                    a, b = vals[src[0]], vals[src[1]]
                    inc = (a.reshape(n, -1) + b.reshape(n, -1)).reshape(a.shape)
                elif not layer.weighted:
                    if i in cached:
                        vals[i] = cached[i]
                    else:
                        vals[i] = apply_layer(layer, vals[src[0]])
                        if i in const:
                            cached[i] = vals[i]
                    continue
                else:
                    if src[0] in const:  # the same current every step: charge once
                        if i not in cached:
                            cached[i] = self.charge(i, vals[src[0]], native=True)
                        inc = cached[i]
                    else:
                        inc = self.charge(i, vals[src[0]], native=True)
                    if i in self.branch_of:
                        vals[i] = inc
                        continue
                key = Stage(i)
                if i == self.weighted[-1]:
                    v[key] = v.get(key, torch.zeros_like(inc)) + inc
                    break
                lam = self.rate_lambda(key)
                vi = v.get(key, torch.full_like(inc, lam / 2)) + inc
                s = vi >= lam  # fire, reset by subtraction; a spike sends λ
                v[key] = torch.where(s, vi - lam, vi)
                spikes += s.flatten(1).sum(1)
                vals[i] = s.to(vi.dtype).mul_(lam)
            if steps is not None and step + 1 in steps:
                snaps[step + 1] = (v[Stage(self.weighted[-1])].reshape(n, -1).clone(), spikes.clone())
        if steps is not None:
            return snaps
        out = v[Stage(self.weighted[-1])]
        return out.reshape(n, -1), spikes, {}

    @torch.no_grad()
    def stage_inputs(self, x: torch.Tensor, stage: Stage, batch: int = 500) -> torch.Tensor:
        """Membranes (TTFS) entering ``stage`` given the thresholds already set for earlier stages
        (``batch`` images at a time: memory only, each image's membranes do not depend on it)."""
        parts = [self._run_ttfs(x[i:i + batch].double(), record=True, stop=Stage(stage))[2][stage]
                 for i in range(0, len(x), batch)]
        return torch.cat(parts)

    def describe(self) -> dict:
        if self.coding == "rate":
            return {s.name: {"theta": float(t)} for s, t in zip(self.stages, self.rate_theta)}
        return {s.name: self.threshold(s).describe() for s in self.stages}
