"""faultline: host-level network fault injection for trading systems.

faultline.agent (the daemon), faultline.controller (CLI, scenarios, pytest plugin),
faultline.examples (the trading lab), faultline.v1 (the generated gRPC stubs).
"""

__version__ = "0.1.0"
