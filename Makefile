# copilot-admin: `make run` serves the demo, `make test` runs the whole suite, `make bench` the benchmarks.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test bench install migrate seed check-deploy clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --noinput

# The demo's deployments are the built-in simulator: seeding creates them, runserver mounts it.
seed: migrate
	COPILOT_SIMULATOR=1 $(PY) manage.py seed_demo

run: seed
	COPILOT_SIMULATOR=1 $(PY) manage.py runserver 127.0.0.1:$(PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) -m bench $(BENCH_ARGS)

check-deploy: install
	DJANGO_ENV=production DJANGO_SECRET_KEY=check-deploy-$$(date +%s)-0123456789abcdefghijklmnopqrstuvwxyz \
	AUDIT_CHECKPOINT_KEY=check-deploy-checkpoint-key-0123456789abcdef AUDIT_CHECKPOINT_KEY_ID=check-deploy \
	DJANGO_DEBUG=false DJANGO_ALLOWED_HOSTS=copilot.example.com $(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles
