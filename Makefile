# bpfpatch: two commands for a newcomer.
#   make demo   set up, then rewrite the sample program that ships with the package
#   make test   set up (incl. Debian clang/llvm/bpftool), then run the whole test suite
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
SAMPLE := src/bpfpatch/samples/sample.o
DEBIAN_PKGS := clang llvm bpftool libbpf-dev libbpf1 linux-libc-dev lcov xdp-tools
# cpu-v4 programs need LLVM 19, the report test Chromium, the kernel-corpus tests linux-source;
# libbpf-tools (bcc's CO-RE tools) embeds third-party objects the object tests cut out;
# golang-github-cilium-ebpf-dev ships cilium/ebpf's test objects (clang 7-14, both byte orders, legacy maps);
# where a Debian has no such package those tests skip with the reason.
DEBIAN_OPTIONAL := clang-19 llvm-19 chromium linux-source-6.12 libbpf-tools golang-github-cilium-ebpf-dev

.PHONY: demo test setup setup-test debian bench fuzz docs

setup:
	$(PIP) install -q --disable-pip-version-check -e . 2>&1 | grep -v "Running pip as the 'root' user" || true

setup-test: setup
	$(PIP) install -q --disable-pip-version-check -e '.[test,bench,docs]' 2>&1 | grep -v "Running pip as the 'root' user" || true

# Debian packages the tests compile and compare with; skipped when already there.
debian:
	@missing=""; for p in $(DEBIAN_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi; \
	for p in $(DEBIAN_OPTIONAL); do dpkg -s $$p >/dev/null 2>&1 || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$p >/dev/null 2>&1 || echo "optional package $$p not available"; done

demo: setup
	$(PYTHON) -m bpfpatch.cli demo

test: debian setup-test
	$(PYTHON) -m ruff check --select F,E9 src tests fuzz bench
	$(PYTHON) -m pytest -q -p no:cacheprovider

# The API reference from the docstrings (pdoc: no configuration to keep in step with the code).
docs: setup
	$(PIP) install -q --disable-pip-version-check -e '.[docs]' 2>&1 | grep -v "Running pip as the 'root' user" || true
	$(PYTHON) -m pdoc --docformat markdown -o build/docs $$($(PYTHON) -c "import pkgutil, bpfpatch; \
	  print(' '.join(['bpfpatch'] + [m.name for m in pkgutil.walk_packages(bpfpatch.__path__, 'bpfpatch.') \
	  if not m.name.endswith('__main__')]))")
	cp docs/cookbook.md build/docs/
	@echo "API reference: build/docs/index.html (cookbook: docs/cookbook.md)"

bench: setup-test
	$(PYTHON) -m bpfpatch.cli bench

FUZZ_WORK ?= /tmp/bpfpatch-fuzz

fuzz: setup-test
	$(PIP) install -q atheris
	mkdir -p $(FUZZ_WORK)
	$(PYTHON) fuzz/fuzz_decoder.py -max_total_time=600 $(FUZZ_WORK) fuzz/corpus
