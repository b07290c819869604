"""faultline controller: the client, the lab, the CLI."""
