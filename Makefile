# Two commands do all set-up from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The PyTorch build ganforge is tested with; pyproject.toml declares only ranges (torch>=2.2).
# Override to use another: make demo TORCH_SPEC="torch==2.9.1 torchvision==0.24.1"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
RUN_DIR ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: demo test test-fast lint docs install browser clean

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/ganforge train --run-dir $(RUN_DIR)
	$(VENV)/bin/ganforge sample $(RUN_DIR) --n 100 --seed 0 --out $(RUN_DIR)/demo-samples.png
	@echo "sample grid: $(RUN_DIR)/demo-samples.png (training grids in $(RUN_DIR)/samples/)"

# The report's browser test needs headless Chromium: Debian's chromium and chromium-driver, installed
# here when missing (as root or with password-less sudo); elsewhere the test skips (and fails under CI=true).
SUDO := $(shell [ "$$(id -u)" = 0 ] && echo "" || (sudo -n true 2>/dev/null && echo "sudo -n") || echo none)
APT := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -y -q
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$(SUDO)" != none ] && command -v apt-get >/dev/null; then \
	  echo "installing headless Chromium for the report's browser test (Debian: chromium chromium-driver)"; \
	  { $(APT) install chromium chromium-driver >/dev/null 2>&1 || \
	    { $(APT) update >/dev/null && $(APT) install chromium chromium-driver >/dev/null; }; } || \
	  echo "could not install Chromium: the browser test will skip (fail under CI=true)"; \
	else echo "no Chromium and no apt-get as root: the browser test will skip (fail under CI=true)"; fi

# The layers of docs/ARCHITECTURE.md (pyproject's import-linter contract) and the generated benchmark index.
lint: install
	$(VENV)/bin/lint-imports
	$(PY) -m benchmarks.index --check

test: install browser lint
	$(PY) -m pytest -q

# The generated pages: the configuration reference (from the config schema) and the benchmark index (from results/).
docs: install
	$(PY) -c "from ganforge.config import reference_markdown; open('docs/configuration.md', 'w').write(reference_markdown() + '\\n')"
	$(PY) -m benchmarks.index

# The edit-test loop: everything but the tests marked slow (torch.compile, torchrun, soak, Inception, Chromium).
test-fast: install lint
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
