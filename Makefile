# saeko-sync — the two commands that matter: `make demo` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install demo demo-serve test check lint typecheck sandbox screenshot clean migration

$(INSTALLED): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

install: $(INSTALLED)

demo: install  ## sandbox + SQLite, one full cycle, then what happened and where to look
	$(BIN)/saeko-sync demo

demo-serve: install  ## the demo, then the service with simulated staff: watch http://127.0.0.1:8080/
	$(BIN)/saeko-sync demo --serve

test: install
	$(BIN)/python -m pytest -q

check: lint typecheck

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy core store connectors rules jobs sandbox reports saeko_sync.py

# The status page rendered by headless Chromium (Debian's package) -> docs/status-page.png
screenshot: install
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/python scripts/status_screenshot.py

sandbox: install
	$(BIN)/saeko-sync sandbox --write-env .env

# A new migration on top of the others, from what store/models.py adds (review it before
# committing): make migration REV=0003 MESSAGE="what changed"
migration: install
	test -n "$(REV)" && test -n "$(MESSAGE)"
	rm -f /tmp/saeko-migration.db
	$(BIN)/python -c "from alembic import command; from alembic.config import Config; \
	from store.db import MIGRATIONS_DIR, make_engine; e = make_engine('sqlite:////tmp/saeko-migration.db'); \
	c = Config(); c.set_main_option('script_location', str(MIGRATIONS_DIR)); \
	conn = e.connect(); c.attributes['connection'] = conn; command.upgrade(c, 'head'); \
	command.revision(c, message='$(MESSAGE)', autogenerate=True, rev_id='$(REV)'); conn.close()"

clean:
	rm -rf $(VENV) var .pytest_cache
