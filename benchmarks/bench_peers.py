"""``make bench``'s entry point for :mod:`snnfpga.peers` (see its docstring for the options)."""

from snnfpga.peers import main

if __name__ == "__main__":
    main()
