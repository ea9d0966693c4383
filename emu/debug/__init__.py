"""The debugger: one stoppable guest (``target``, over a process or the machine) and the REPL with gdb's words."""
