"""The scenario model: the file format, its validation, the resilience config."""
