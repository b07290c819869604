"""A small reference trading system for the chaos lab: gateway, broker (Redis), consumer, trader."""

from pathlib import Path

# The lab's client timings (a LAN, seconds-long faults); the targets stay the contract's.
LAB_CONFIG = Path(__file__).with_name("lab_config.yaml")
