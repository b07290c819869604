"""gRPC translation: proto messages <-> domain values, domain errors -> status codes."""
