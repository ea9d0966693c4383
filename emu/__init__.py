"""emu: an instructional x86-64 machine emulator."""
