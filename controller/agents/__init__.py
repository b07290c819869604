"""Talking to agents: the only place grpc and the stubs are used."""
