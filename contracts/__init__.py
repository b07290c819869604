"""The shipped contracts, data only: resilience_config.yaml, agent-policy.yaml, scenarios/."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
