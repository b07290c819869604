# faultline: `make demo` runs the main job, `make test` runs the tests.
# Both need root (network namespaces, tc, BPF) and set themselves up on Debian 12.
VENV ?= .venv
PY := $(VENV)/bin/python
PROTO_SRC := proto/faultline/v1/agent.proto

.PHONY: setup setup-vm demo test test-vm test-vm-systemd chaos bench lint proto clean-lab install fresh-check

# Everything but `proto` changes the kernel or the OS: one line and exit 1, before anything runs.
ROOT_GOALS := setup setup-vm demo test test-vm test-vm-systemd chaos bench lint clean-lab install fresh-check
ifneq ($(filter $(ROOT_GOALS),$(or $(MAKECMDGOALS),setup)),)
ifneq ($(shell id -u),0)
$(error needs root: network namespaces, tc and BPF (and setup installs OS packages); run it with sudo)
endif
endif

setup:
	./scripts/setup.sh

# Also what the VM stage boots: qemu and Debian's kernel image.
setup-vm:
	./scripts/setup.sh --with-vm

demo: setup
	$(VENV)/bin/faultline demo

test: setup-vm
	$(VENV)/bin/ruff check .
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-vm
	$(MAKE) --no-print-directory test-vm-systemd

# The netem tests, inside one boot of a VM with Debian's kernel (this host's may lack netem):
# tests/vm and the chaos suite's latency cases (marked netem). Results come out in build/vm
# (netem-accuracy.json, chaos/ with the scorecard's results.json, output.log, console.log).
# If the VM cannot start, this fails under CI and skips with the reason elsewhere.
test-vm: setup-vm
	@rc=0; $(VENV)/bin/faultline vm --out build/vm --timeout 40m -- python -m pytest -q -p no:cacheprovider -rs \
		-m "netem or not chaos" tests/vm tests/chaos || rc=$$?; \
	if [ $$rc -eq 75 ] && [ -z "$$CI" ]; then echo "test-vm: SKIPPED, the VM cannot start here (reason above)"; exit 0; fi; \
	exit $$rc

# One boot with systemd as PID 1 (part of `make test`): `make install` there (offline, from a
# wheelhouse downloaded first, as on a host without internet), the unit with mTLS and the
# shipped policy, RESTART_UNIT, PROCESS faults, systemctl restart/stop (tests/systemd; figures
# in build/vm-systemd/systemd.json). As test-vm: fails under CI if the VM cannot start.
test-vm-systemd: setup-vm
	$(VENV)/bin/pip download -q -d build/vm-systemd/wheels setuptools .
	@rc=0; $(VENV)/bin/faultline vm --systemd --out build/vm-systemd --timeout 25m -- python -m pytest -q \
		-p no:cacheprovider -rs tests/systemd || rc=$$?; \
	if [ $$rc -eq 75 ] && [ -z "$$CI" ]; then echo "test-vm-systemd: SKIPPED, the VM cannot start here (reason above)"; exit 0; fi; \
	exit $$rc

# The chaos suite alone (also part of `make test`): the trading lab's scenarios, scorecard at
# the end; reports in build/chaos (results.json, junit.xml, per scenario journal/timeline).
# Where this kernel lacks netem, the latency cases then run in one VM boot (build/vm/chaos).
chaos: setup-vm
	$(PY) -m pytest tests/chaos -m chaos -rs --junitxml=build/chaos/junit.xml
	@if $(PY) -c 'import sys; from faultline.controller.cli.demo import why_no_netem; sys.exit(0 if why_no_netem() else 1)'; then \
		$(VENV)/bin/faultline vm --out build/vm --timeout 30m -- python -m pytest -q -p no:cacheprovider -rs \
			-m "chaos and netem" tests/chaos; fi

# Benchmarks: each prints its table and appends to bench/results.json (kernel, CPUs, commit, date).
# The netem ones (DELAY apply latency, netem and tcconfig accuracy) run in one VM boot; where
# no VM can start they are skipped with the reason (outside CI). ~15 min here.
bench: setup-vm
	$(PY) -m bench.apply_latency
	$(PY) -m bench.accuracy
	$(PY) -m bench.detection
	$(PY) -m bench.coordinated_start
	$(PY) -m bench.footprint
	$(PY) -m bench.observe_cost --rounds 3
	$(PY) -m bench.plugin_startup --runs 10
	@rc=0; $(PY) -m bench.vm || rc=$$?; \
	if [ $$rc -eq 75 ] && [ -z "$$CI" ]; then echo "bench: VM part SKIPPED, the VM cannot start here (reason above)"; exit 0; fi; \
	exit $$rc

lint: setup
	$(VENV)/bin/ruff check .

# Regenerate the committed stubs; tests/test_proto_stubs.py fails when they are stale.
proto:
	$(PY) -m grpc_tools.protoc -Iproto --python_out=proto --grpc_python_out=proto --pyi_out=proto $(PROTO_SRC)

# The README's commands on a fresh Debian 12 root (debootstrap minbase, chroot, this kernel):
# make demo, the unit tests and a few lab tests there, each step timed; log in build/fresh/.
# FRESH=1 bootstraps again instead of reusing the base root cached by an earlier run here.
# If it cannot run (no debootstrap, no mirror) it fails under CI and skips elsewhere.
fresh-check:
	@rc=0; python3 scripts/fresh_check.py $(if $(FRESH),--fresh) || rc=$$?; \
	if [ $$rc -eq 75 ] && [ -z "$$CI" ]; then echo "fresh-check: SKIPPED (reason above)"; exit 0; fi; \
	exit $$rc

# Install the agent on this host: /opt/faultline, the systemd unit, /etc/faultline (policy, mTLS).
install:
	./scripts/install.sh

# Remove whatever a lab run left behind (namespaces, bridge, agents) - only what the lab made.
clean-lab:
	$(VENV)/bin/faultline lab down
