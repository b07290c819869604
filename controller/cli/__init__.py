"""The command line: `faultline ...`."""
