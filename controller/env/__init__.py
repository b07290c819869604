"""Where scenarios run: the lab of namespaces, the VM, certificates, host resolution."""
