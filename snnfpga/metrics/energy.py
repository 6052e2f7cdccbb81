"""The SC-TTFS paper's normalised energy, ``E = N·E_i + L·E_l`` (the one place it is computed).

``N`` is the number of spikes per frame and ``L`` the latency in time steps; ``E_i`` and
``E_l`` weigh dynamic (per-spike) against static (per-step) energy as measured for two
neuromorphic platforms, the figures the SC-TTFS paper (Feng et al., 2024) takes from Han &
Roy (ECCV 2020): TrueNorth (0.4, 0.6) and SpiNNaker (0.64, 0.36). Comparable only between
networks of the same topology.
"""

from __future__ import annotations

__all__ = ["PLATFORMS", "paper_energy", "paper_energy_record"]

#: platform -> (E_i per spike, E_l per time step), normalised
PLATFORMS = {"truenorth": (0.4, 0.6), "spinnaker": (0.64, 0.36)}


def paper_energy(spikes_per_frame: float, timesteps: int) -> dict[str, float]:
    """``{platform: N·E_i + L·E_l}`` for every platform of :data:`PLATFORMS`."""
    if spikes_per_frame < 0 or timesteps < 0:
        raise ValueError(f"spikes_per_frame and timesteps must be non-negative, not "
                         f"{spikes_per_frame!r} / {timesteps!r}")
    return {name: spikes_per_frame * ei + timesteps * el for name, (ei, el) in PLATFORMS.items()}


def paper_energy_record(spikes_per_frame: float, timesteps: int) -> dict:
    """:func:`paper_energy` plus the inputs it rests on: ``{"truenorth": E, "spinnaker": E,
    "spikes_per_frame": N, "timesteps": L}`` (what a build report records)."""
    out: dict = paper_energy(spikes_per_frame, timesteps)
    out.update(spikes_per_frame=float(spikes_per_frame), timesteps=int(timesteps))
    return out
