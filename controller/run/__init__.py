"""Running and judging one scenario: the runner, probes, recovery, the report."""
