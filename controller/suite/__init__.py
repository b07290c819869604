"""The chaos suite's API without pytest: fault injector, recovery timer, state validator."""
