"""snnfpga: PyTorch networks to integer spiking networks on FPGAs."""

__version__ = "0.1.0"
