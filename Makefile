# make demo: set up .venv (once) and run `unified-params compare`.
# make test: set up .venv (once) and run the whole test suite on every backend (none may be skipped).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
KERAS_OTHER_BACKENDS := jax torch

.PHONY: demo test bench conformance clean

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[torch,keras,flax,equinox,test]"
	# mxnet 1.9.1 declares numpy<2, which would downgrade numpy: install it alone (see backends/mxnet_import.py).
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt mxnet==1.9.1
	# keras-hub (tests/test_real_models.py) requires tensorflow-text, which would pull the full tensorflow next to
	# tensorflow-cpu; keras-hub imports it only for its tokenizers: install keras-hub alone (its other needs,
	# regex and tokenizers, come with transformers).
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt keras-hub==0.32.0
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/unified-params compare

test: $(STAMP)
	$(PY) -m ruff check --quiet .
	UNIFIED_PARAMS_REQUIRE_ALL=1 $(PY) -m pytest -q tests
	for kb in $(KERAS_OTHER_BACKENDS); do \
	  KERAS_BACKEND=$$kb UNIFIED_PARAMS_REQUIRE_ALL=1 $(PY) -m pytest -q -k keras --pyargs unified_params.conformance --backend keras --backend torch tests/test_keras_adapter.py tests/test_keras_docs.py || exit 1; \
	done

conformance: $(STAMP)
	$(VENV)/bin/unified-params conformance

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info
