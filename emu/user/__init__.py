"""User-mode Linux: run a static x86-64 ELF program on the host, like qemu-x86_64."""
