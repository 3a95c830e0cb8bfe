# Two commands set everything up: `make book` and `make test`.
# Both create .venv from requirements.txt when it is missing or older than the file.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

ASSIGNMENT ?=
SUBMISSIONS ?=
TIMEOUT ?= 120

.PHONY: book test exercises grade clean bench

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

book: $(STAMP)
	$(PY) -m tools.build_book

test: $(STAMP)
	$(PY) -m pytest

exercises: $(STAMP)
	$(PY) -m tools.exercises

grade: $(STAMP)
	$(PY) -m tools.grade "$(ASSIGNMENT)" "$(SUBMISSIONS)" --timeout $(TIMEOUT)

clean:
	rm -rf _build
