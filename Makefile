# Two commands do all set-up from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The PyTorch build ganforge is tested with; pyproject.toml declares only ranges (torch>=2.2).
# Override to use another: make demo TORCH_SPEC="torch==2.9.1 torchvision==0.24.1"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
RUN_DIR ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: demo test install clean

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

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
