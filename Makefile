# faultline: `make demo` runs the main job, `make test` runs the tests.
# Both need root (network namespaces, tc, BPF) and set themselves up on Debian 12.
VENV ?= .venv
PY := $(VENV)/bin/python
PROTO_SRC := proto/faultline/v1/agent.proto

.PHONY: setup demo test lint proto clean-lab

setup:
	./scripts/setup.sh

demo: setup
	$(VENV)/bin/faultline demo

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

# Regenerate the committed stubs; tests/test_proto_stubs.py fails when they are stale.
proto:
	$(PY) -m grpc_tools.protoc -Iproto --python_out=proto --grpc_python_out=proto --pyi_out=proto $(PROTO_SRC)

# Remove whatever a lab run left behind (namespaces, bridge, agents) - only what the lab made.
clean-lab:
	$(VENV)/bin/faultline lab down
