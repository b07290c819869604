"""Reference systems faultline is exercised against (not part of the product)."""
