"""The full-system PC: address map, devices and run loop (``pc``), the host's console, the default guest."""
