# svdbench: `make demo` (install + the default run on real Fashion-MNIST), `make test` (install + tests).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# the torch builds svdbench is tested with (CUDA build on x86_64; runs on the CPU too)
TORCH := torch==2.14.1 torchvision==0.29.1
FASHION_DIR := /usr/share/datasets/fashion-mnist

.PHONY: demo quick test test-fast lint data browser install clean study vit-study

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

# the demo: the study's best on accuracy and measured latency (docs/results.md), spatial-wise SVD training with
# ranks rounded to multiples of 8, pruned to 2x fewer MACs
DEMO := method.decomposition=spatial method.round_to=8 method.speedup=2
demo: data
	$(PY) run.py $(DEMO)

# a first look in about two minutes: the demo's method on 3000 training and 2000 test images, 4 + 2 epochs,
# pruned to 2x fewer MACs (it shows the pipeline and the compression; its accuracy is not a result)
QUICK := $(DEMO) dataset.train_subset=3000 dataset.test_subset=2000 trainer.epochs=4 method.finetune_epochs=2 \
	hydra.run.dir=outputs/quick
quick: data
	$(PY) run.py $(QUICK)

# the browser report.html is tested in: Debian's chromium and its chromedriver (nothing downloaded at run time)
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  echo "chromium and chromedriver present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
	  && echo "chromium and chromedriver installed" || echo "chromium could not be installed: the browser test is skipped"; \
	else \
	  echo "no chromium (apt-get install chromium chromium-driver as root): the browser test is skipped"; \
	fi

test: data browser
	$(PY) -m ruff check . && $(PY) -m ruff format --check .
	$(PY) -m pytest -q -n 2 --dist loadfile

# the fast tier: everything but the end-to-end runs (tests marked slow)
test-fast: install
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"

lint: install
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

clean:
	rm -rf outputs multirun .pytest_cache

# The Fashion-MNIST study of docs/results.md: ResNet-8 on 10000 training images, seeds 0, 1 and 2, a converged
# dense model per seed, then every method from its seed's dense checkpoint with one budget, each driven to the
# MAC speed-ups 1.5x, 2x and 3x (conf/sweep/study_*.yaml), the 2x architecture of spatial SVD training trained
# from scratch, two jobs at a time; completed runs are kept when rerun. Then latency and the reports (paired
# against spatial SVD training; on latency; paired against random filters, the criteria's sanity baseline).
STUDY_SPLIT := --split method.decomposition method.round_to
# STUDY_ARGS: overrides for every sweep, e.g. STUDY_ARGS=dataset.train_subset=null for the full 55000 images
# (about 5.5x longer; use a fresh outputs/study: runs of another config there are refused, not replaced).
STUDY_ARGS ?=
study: data
	$(PY) run.py -m +sweep=study_dense $(STUDY_ARGS)
	$(PY) run.py -m +sweep=study_svd $(STUDY_ARGS)
	$(PY) run.py -m +sweep=study_round_to $(STUDY_ARGS)
	$(PY) run.py -m +sweep=study_posthoc $(STUDY_ARGS)
	$(PY) run.py -m +sweep=study_trp $(STUDY_ARGS)
	$(PY) run.py -m +sweep=study_filter $(STUDY_ARGS)
	$(PY) run.py -m +sweep=study_scratch $(STUDY_ARGS)
	$(VENV)/bin/svdbench latency outputs/study --onnx --threads 1 --batch-sizes 1 64 --max-seconds 0.5
	$(VENV)/bin/svdbench report outputs/study --out outputs/study/report $(STUDY_SPLIT) --reference "svd (spatial)"
	$(VENV)/bin/svdbench report outputs/study --out outputs/study/report_latency $(STUDY_SPLIT) --reference "svd (spatial)" \
		--x latency --runtime onnxruntime/cpu --batch 64
	$(VENV)/bin/svdbench report outputs/study --out outputs/study/report_random $(STUDY_SPLIT) --reference random_filter

# The ViT study of docs/results.md ("A vision transformer"): the small ViT of conf/model/vit_fmnist.yaml on 10000
# training images, seeds 0 and 1, a dense model per seed, then SVD training, post-hoc SVD, TRP and L1-norm pruning of
# the MLP neurons from it with one budget, each to MAC speed-ups 1.5x and 2x; then latency and the reports.
vit-study: data
	$(PY) run.py -m +sweep=vit_dense $(STUDY_ARGS)
	$(PY) run.py -m +sweep=vit_svd $(STUDY_ARGS)
	$(PY) run.py -m +sweep=vit_posthoc $(STUDY_ARGS)
	$(PY) run.py -m +sweep=vit_trp $(STUDY_ARGS)
	$(PY) run.py -m +sweep=vit_filter $(STUDY_ARGS)
	$(VENV)/bin/svdbench latency outputs/vit_study --onnx --threads 1 --batch-sizes 1 64 --max-seconds 0.5
	$(VENV)/bin/svdbench report outputs/vit_study --out outputs/vit_study/report
	$(VENV)/bin/svdbench report outputs/vit_study --out outputs/vit_study/report_latency --x latency \
		--runtime onnxruntime/cpu --batch 64
