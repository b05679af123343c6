# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi

.PHONY: run migrate serve test lint format clean

PORT           ?= 8000
CONNECTIONS    ?= 5000
# gunicorn's control socket: one per process (systemd's unit puts it under /run).
CONTROL_SOCKET ?= instance/gunicorn-$(PORT).ctl
# One access-log line per request: the peer, the client as the proxy saw it, time, method, the
# path without its query string, status, bytes and milliseconds. No referrer, query or body.
ACCESS_LOG_FORMAT := %(h)s %({x-forwarded-for}i)s %(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install whenever a requirements file changes.
$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# The development server's own secret: random, made once, readable by its owner only.
SECRET_KEY_FILE := instance/secret_key

$(SECRET_KEY_FILE):
	mkdir -p instance
	(umask 077 && $(BIN)/python -c "import secrets; print(secrets.token_hex(32))" > $@)

## run: install, migrate, load the demo (once) and serve on http://127.0.0.1:5000
run: export SECRET_KEY ?= $(shell cat $(SECRET_KEY_FILE) 2>/dev/null)
run: $(VENV)/.installed $(SECRET_KEY_FILE)
	$(FLASK) db upgrade
	$(FLASK) demo
	SESSION_COOKIE_SECURE=false $(FLASK) run --host 127.0.0.1 --port 5000

## migrate: bring the database to this release's schema; once per release, before `serve`.
## The old release keeps serving meanwhile: a migration only adds what the new code needs
## (columns, tables, indexes); what it stops using is dropped by a later release's migration.
migrate: $(VENV)/.installed
	$(FLASK) db upgrade

## serve: the production server: one gunicorn process on $(PORT), gevent worker (an event loop
## holds every websocket; up to $(CONNECTIONS) connections). Run one per core, each on its own
## port, behind a sticky proxy (docs/deployment.md). It does not migrate: `make migrate` first.
## Needs SECRET_KEY (and DATABASE_URL) set.
serve: $(VENV)/.installed
	mkdir -p $(dir $(CONTROL_SOCKET))
	SOCKETIO_ASYNC_MODE=gevent $(BIN)/gunicorn --workers 1 --worker-class gevent \
		--worker-connections $(CONNECTIONS) --bind 127.0.0.1:$(PORT) \
		--control-socket $(CONTROL_SOCKET) \
		--access-logfile - --access-logformat '$(ACCESS_LOG_FORMAT)' wsgi:app

## test: install the test tools, lint, and run the whole suite
test: $(VENV)/.installed-dev lint
	$(BIN)/pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
