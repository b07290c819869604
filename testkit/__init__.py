"""Helpers the tests and the benchmarks share (lab namespaces, sockets, waits on conditions,
statistics). Not part of the product: the wheel does not ship it and faultline never imports it."""
