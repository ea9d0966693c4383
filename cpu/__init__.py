"""The x86-64 CPU: architectural state, decoder, semantics and execution backends."""
