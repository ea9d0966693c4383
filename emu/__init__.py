"""emu: an instructional x86-64 machine emulator.

By subsystem, each on the layers below it (``firmware/``, ``devices/``, ``cpu/``):

- ``emu.machine``: the PC (address map, run loop, console, the default guest's recipe);
- ``emu.user``: user-mode Linux (ELF loader, system calls on the host);
- ``emu.debug``: the debug target over a process or the machine, and the REPL on it;
- ``emu.gdb``: the GDB remote protocol over the same target;
- ``emu.cli``: the ``emu`` command, on top of them all.
"""
