# mmbcn — common tasks. Everything installs into the current Python
# interpreter ($(PYTHON)); activate a virtualenv or conda env first to keep
# the stack apart from other projects.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# torch is installed only when none is importable: a CUDA build the user
# already has is kept (mmcv's ops are then compiled for it).
TORCH_SPEC ?= torch==2.13.0
# A folder of prebuilt wheels used as a cache when it exists (never needed).
WHEELHOUSE ?= ../shared/wheelhouse
FIND_LINKS := $(if $(wildcard $(WHEELHOUSE)/*.whl),--find-links $(WHEELHOUSE),)
PIP_REQS := -r requirements/build.txt -r requirements/stack.txt \
            -r requirements/runtime.txt -r requirements/tests.txt \
            -r requirements/deploy.txt
PYTEST_ARGS ?=
# seeds of make demo / make compare (SEEDS="0 1 2": each scheme at each seed,
# the table as mean ± std (n)); empty: one run per scheme at the configs' seed
SEEDS ?=
SEED_ARGS := $(if $(strip $(SEEDS)),--seeds $(SEEDS),)

.PHONY: install install-stack demo compare reproduce test bench check-env clean

install:  ## install what is missing (seconds when all is there)
	@$(PYTHON) tools/misc/check_env.py --quiet || $(MAKE) --no-print-directory install-stack

install-stack:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	# build requirements first: mmcv compiles against torch, needs setuptools<81
	$(PIP) install -r requirements/build.txt
	# mmcv 2.1.0 has no wheel for current torch: built from source, with its
	# ops, seeing the installed torch (~25 min on 2 cores, then pip's cache)
	$(PIP) install --no-build-isolation $(FIND_LINKS) $(PIP_REQS)
	$(PIP) install --no-build-isolation --no-deps -e .
	$(PYTHON) tools/misc/check_env.py --quiet

check-env:
	$(PYTHON) tools/misc/check_env.py

demo: install
	$(PYTHON) tools/demo.py $(SEED_ARGS)

compare: install  ## the demo with every scheme (reuses finished demo runs)
	$(PYTHON) tools/demo.py --schemes all $(SEED_ARGS)

reproduce: install  ## the papers' protocol in miniature (docs/protocol.md)
	$(PYTHON) tools/reproduce.py $(if $(strip $(SEEDS)),--seeds $(SEEDS),) $(if $(strip $(VARIANT)),--variant $(VARIANT),)

test: install
	$(PYTHON) -m pytest tests -q $(PYTEST_ARGS)

bench: install
	$(PYTHON) tools/analysis/benchmark_layers.py

clean:
	rm -rf build dist *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
