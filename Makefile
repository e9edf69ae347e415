# Two entry points for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test venv debian-test-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests drive: SIPp (sip-tester) as a phone and trunk, espeak-ng for
# prompts and speech, ffmpeg for announcement conversion (pydub).
DEBIAN_TEST_PKGS := sip-tester espeak-ng ffmpeg
debian-test-deps:
	@command -v sipp >/dev/null 2>&1 && command -v espeak-ng >/dev/null 2>&1 && command -v ffmpeg >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_TEST_PKGS); }

# Kamailio is the side-by-side reference in the benchmarks.
debian-bench-deps: debian-test-deps
	@command -v kamailio >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kamailio; }

run: $(STAMP)
	$(VENV)/bin/callrouter serve --config config/callrouter.yaml

test: $(STAMP) debian-test-deps
	$(PY) -m pytest -q

bench: $(STAMP) debian-bench-deps
	$(PY) bench/parse.py
	$(PY) bench/register.py
	$(PY) bench/calls.py
	$(PY) bench/relay.py
	$(PY) bench/routing.py
	$(PY) bench/api.py
	$(PY) bench/dtmf.py
	$(PY) bench/ivr.py

clean:
	rm -rf $(VENV) var
