"""``make bench``'s entry point for :mod:`snnfpga.pareto` (see its docstring for the options)."""

import sys

from snnfpga.pareto import main

if __name__ == "__main__":
    sys.exit(main())
