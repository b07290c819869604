"""faultline agent: the privileged daemon that faults this host's kernel and heals it."""
