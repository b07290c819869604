"""Kernel mechanisms: the only code that talks netlink or loads BPF."""
