"""faultline agent: the privileged daemon that faults this host's kernel and heals it."""

__version__ = "0.1.0"
