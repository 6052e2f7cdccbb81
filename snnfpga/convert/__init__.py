"""From a trained PyTorch ANN to an integer Network IR, as explicit passes.

:mod:`.data` (data sets) → :mod:`.models` / :mod:`.train` (the ANN) → :mod:`.graph` (trace, BN
fold) → :mod:`.snn` (the float SNN) → :mod:`.thresholds` (threshold init) → :mod:`.finetune` →
:mod:`.quantize` (integer IR, last); :mod:`.pipeline` runs them in that order.

Nothing is imported here, so ``snnfpga.convert.data`` loads without torch.
"""
