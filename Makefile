# copilot-admin: `make run` serves the demo, `make test` runs the whole suite, `make bench` the benchmarks.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test bench install oidc-provider oidc-provider-run migrate seed check-deploy clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# The SSO tests' OpenID Connect provider (panva/oidc-provider on loopback): npm ci from the lock file.
OIDC_PROVIDER := tests/identity/oidc_provider
$(OIDC_PROVIDER)/node_modules/.installed: $(OIDC_PROVIDER)/package.json $(OIDC_PROVIDER)/package-lock.json
	cd $(OIDC_PROVIDER) && npm ci --no-audit --no-fund --silent
	touch $@

oidc-provider: $(OIDC_PROVIDER)/node_modules/.installed

migrate: install
	$(PY) manage.py migrate --noinput

# The demo's deployments are the built-in simulator: seeding creates them, runserver mounts it.
seed: migrate
	PORT=$(PORT) COPILOT_SIMULATOR=1 $(PY) manage.py seed_demo

# Served with DEBUG off, so pages fail with the project's own error pages as in production
# (static files are still served, by WhiteNoise); `make run DJANGO_DEBUG=true` shows Django's
# development error pages instead.
DJANGO_DEBUG ?= false
run: seed
	PORT=$(PORT) COPILOT_SIMULATOR=1 DJANGO_DEBUG=$(DJANGO_DEBUG) $(PY) manage.py runserver 127.0.0.1:$(PORT)

test: install oidc-provider
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) -m bench $(BENCH_ARGS)

check-deploy: install
	DJANGO_ENV=production DJANGO_SECRET_KEY=check-deploy-$$(date +%s)-0123456789abcdefghijklmnopqrstuvwxyz \
	AUDIT_CHECKPOINT_KEY=check-deploy-checkpoint-key-0123456789abcdef AUDIT_CHECKPOINT_KEY_ID=check-deploy \
	DJANGO_DEBUG=false DJANGO_ALLOWED_HOSTS=copilot.example.com $(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles

# Try single sign-on locally (README): the loopback OpenID Connect provider for `make run`'s portal.
OIDC_PORT ?= 9000
oidc-provider-run: oidc-provider
	OIDC_PORT=$(OIDC_PORT) OIDC_CLIENTS='[{"client_id":"copilot-admin-local","client_secret":"local-dev-secret","redirect_uris":["http://127.0.0.1:$(PORT)/login/sso/callback/"]}]' node $(OIDC_PROVIDER)/server.mjs
