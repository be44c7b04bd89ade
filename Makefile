# svdbench: `make demo` (install + the default run on real Fashion-MNIST), `make test` (install + tests).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# the torch builds svdbench is tested with (CUDA build on x86_64; runs on the CPU too)
TORCH := torch==2.14.1 torchvision==0.29.1
FASHION_DIR := /usr/share/datasets/fashion-mnist

.PHONY: demo test lint data install clean baselines-table study

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Fashion-MNIST: Debian's dataset-fashion-mnist where apt can install it; torchvision's download otherwise.
data: install
	@if [ -f $(FASHION_DIR)/train-images-idx3-ubyte.gz ] || [ -f data/FashionMNIST/raw/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	     (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 && \
	     [ -f $(FASHION_DIR)/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST installed from dataset-fashion-mnist"; \
	else \
	  $(PY) -c "import torchvision as tv; [tv.datasets.FashionMNIST('data', train=t, download=True) for t in (True, False)]" \
	  && echo "Fashion-MNIST downloaded to data/"; \
	fi

demo: data
	$(PY) run.py

test: data
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

clean:
	rm -rf outputs multirun .pytest_cache

# The baselines comparison of docs/baselines.md: one dense ResNet-8 on Fashion-MNIST (12 epochs),
# then every method from that checkpoint with the same budget (4 training epochs where the method
# trains, 2 fine-tuning epochs per operating point), then the report. About 70 minutes on 2 CPU cores.
STUDY ?= outputs/baselines_table
STUDY_BUDGET := trainer.epochs=4 method.finetune_epochs=2 trainer.progress=false init_from=$(STUDY)/dense
baselines-table: data
	$(PY) run.py method=dense trainer.progress=false hydra.run.dir=$(STUDY)/dense
	$(PY) run.py method=svd method.init=svd 'method.energies=[0.003,0.03]' method.energy=0.01 $(STUDY_BUDGET) hydra.run.dir=$(STUDY)/svd_channel
	$(PY) run.py method=svd method.init=svd 'method.energies=[0.1]' method.energy=0.06 $(STUDY_BUDGET) hydra.run.dir=$(STUDY)/svd_channel_high
	$(PY) run.py method=svd method.init=svd method.decomposition=spatial 'method.energies=[0.003,0.03]' method.energy=0.01 $(STUDY_BUDGET) hydra.run.dir=$(STUDY)/svd_spatial
	for e in 0.2 0.35 0.5; do $(PY) run.py method=svd_posthoc method.energy=$$e $(STUDY_BUDGET) hydra.run.dir=$(STUDY)/svd_posthoc_$$e || exit 1; done
	$(PY) run.py method=trp $(STUDY_BUDGET) hydra.run.dir=$(STUDY)/trp
	for e in 0.95 0.96; do $(PY) run.py method=trp method.energy_train=$$e $(STUDY_BUDGET) hydra.run.dir=$(STUDY)/trp_e$$e || exit 1; done
	$(PY) run.py method=l1_filter $(STUDY_BUDGET) hydra.run.dir=$(STUDY)/l1_filter
	$(PY) run.py method=sfp $(STUDY_BUDGET) hydra.run.dir=$(STUDY)/sfp
	$(PY) run.py method=fpgm $(STUDY_BUDGET) hydra.run.dir=$(STUDY)/fpgm
	$(VENV)/bin/svdbench report $(STUDY) --out $(STUDY)/report --split method.decomposition

# The Fashion-MNIST study of docs/results.md: ResNet-8, seeds 0 and 1, a dense model per seed, then
# every method at three or more operating points from its seed's dense checkpoint with one budget
# (conf/sweep/study_*.yaml), two jobs at a time; completed runs are kept when rerun. Then the report.
study: data
	$(PY) run.py -m +sweep=study_dense
	$(PY) run.py -m +sweep=study_svd
	$(PY) run.py -m +sweep=study_posthoc
	$(PY) run.py -m +sweep=study_filter
	$(PY) run.py -m +sweep=study_trp
	$(VENV)/bin/svdbench report outputs/study --out outputs/study/report --split method.decomposition
