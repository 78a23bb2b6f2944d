# Two commands do all set-up on a fresh machine:
#   make run    create .venv, install requirements.txt, serve the course on http://127.0.0.1:7860
#   make test   create .venv, install requirements-dev.txt (+ Debian's chromium and postgresql when root), run every test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export GRADIO_ANALYTICS_ENABLED := False
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test bench browser clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when a requirements file changed (the stamp is older than it).
$(VENV)/.runtime-installed: requirements.txt constraints.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt constraints.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $@ $(VENV)/.runtime-installed

browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: install Debian's chromium (apt-get install chromium) for the browser tests"; fi; \
	fi
	@# class mode's tests start their own PostgreSQL server (tests/test_classroom.py); skipped, with the reason, without it
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; \
	  else echo "postgresql is missing: install Debian's postgresql (apt-get install postgresql) for class mode's tests"; fi; \
	fi

run: $(VENV)/.runtime-installed
	$(PY) -m app.main

# Two processes, whole test files each (module fixtures stay in one process): about half the wall time on two cores.
test: $(VENV)/.dev-installed browser
	$(PY) -m pytest -q -rs -n 2 --dist loadfile tests

bench: $(VENV)/.dev-installed
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
