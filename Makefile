# Two commands set everything up: `make book` and `make test`.
# Both create .venv from requirements.txt when it is missing or older than the file.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

ASSIGNMENT ?=
SUBMISSIONS ?=
TIMEOUT ?= 120

.PHONY: book test exercises grade clean bench browser

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

book: $(STAMP)
	$(PY) -m tools.build_book

test: $(STAMP) browser
	$(PY) -m pytest

# The browser tests drive Debian's Chromium; install it when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium is missing: install Debian's chromium package to run the browser tests."; \
	  fi; }

bench: $(STAMP)
	$(PY) -m tools.bench

exercises: $(STAMP)
	$(PY) -m tools.exercises

# make grade ASSIGNMENT=01-missing-values SUBMISSIONS=folder [TIMEOUT=120] [MEMORY=2G] [JOBS=2]
grade: $(STAMP)
	$(PY) -m tools.grade "$(ASSIGNMENT)" "$(SUBMISSIONS)" --timeout $(TIMEOUT) $(if $(MEMORY),--memory $(MEMORY)) $(if $(JOBS),--jobs $(JOBS))

clean:
	rm -rf _build
