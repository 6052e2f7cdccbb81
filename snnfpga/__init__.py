"""snnfpga: PyTorch networks to integer spiking networks on FPGAs.

The Python API (:mod:`snnfpga.api`, docs/api.md)::

    import snnfpga
    snn = snnfpga.convert(model, calibration=x_train[:2000], finetune=(x_train, y_train))
    snn.evaluate(x_test, y_test); snn.simulate(x_test[:100]); snn.build(board="ulx3s-85f")

Names are imported on first use, so ``import snnfpga`` loads neither torch nor amaranth.
``snnfpga.convert`` is also the converter's subpackage; calling it calls :func:`snnfpga.api.convert`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["convert", "load", "load_model", "SNN", "Evaluation", "DataMismatch", "UserError",
           "__version__"]

TYPE_CHECKING = False  # not typing's: importing typing would cost more than this whole module
if TYPE_CHECKING:
    from . import convert
    from .api import SNN, DataMismatch, Evaluation, load, load_model
    from .errors import UserError

_API = ("load", "load_model", "SNN", "Evaluation", "DataMismatch")


def __getattr__(name: str) -> object:
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "convert":  # the subpackage, callable (snnfpga/convert/__init__.py)
        import importlib

        return importlib.import_module(".convert", __name__)
    if name == "UserError":
        from .errors import UserError

        return UserError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
