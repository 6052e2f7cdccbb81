"""From a trained PyTorch ANN to an integer Network IR, as explicit passes.

:mod:`.data` (data sets) → :mod:`.models` / :mod:`.train` (the ANN) → :mod:`.graph` (trace, BN
fold) → :mod:`.snn` (the float SNN) → :mod:`.thresholds` (threshold init) → :mod:`.finetune` →
:mod:`.quantize` (integer IR, last); :mod:`.pipeline` runs them in that order.

Nothing is imported here, so ``snnfpga.convert.data`` loads without torch. The package is
callable: ``snnfpga.convert(model, calibration, ...)`` is :func:`snnfpga.api.convert` (docs/api.md).
"""

import sys as _sys
import types as _types


class _CallableModule(_types.ModuleType):
    """``snnfpga.convert(model, calibration, ...)`` is :func:`snnfpga.api.convert`: the package
    and the function share the name ``snnfpga.convert``, so the package is callable."""

    def __call__(self, *args, **kwargs):
        from ..api import convert

        return convert(*args, **kwargs)

    @property
    def __signature__(self):  # help() and inspect show the function's typed signature
        import inspect

        from ..api import convert

        return inspect.signature(convert)


_sys.modules[__name__].__class__ = _CallableModule
