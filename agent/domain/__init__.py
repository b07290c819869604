"""Agent domain: fault specs, validation, journal, leases, the engine. No grpc here."""
