"""The GDB remote stub: packets, the register layout, and the stub serving gdb from the debug target."""
