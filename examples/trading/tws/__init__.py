"""A lab IB Gateway speaking the TWS API socket protocol (wire, messages, gateway)."""
