"""Test workloads the scenarios run (not imported by the product)."""
