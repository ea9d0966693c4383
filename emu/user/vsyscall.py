"""The legacy vsyscall page at 0xffffffffff600000, as Linux's default ``vsyscall=xonly`` emulates it.

Follows arch/x86/entry/vsyscall/vsyscall_64.c (``emulate_vsyscall``): the page is not readable (a load
from it is SIGSEGV, as natively), but a call to one of its three entry points faults on the
instruction fetch, and the kernel then carries out the system call the entry point stands for
(+0: gettimeofday, +0x400: time, +0x800: getcpu) with the caller's registers, puts the result in rax
and returns to the address on top of the stack, as the ``ret`` there would have.  A jump to any other
address in the page, a stack that cannot be read, or a pointer argument the call cannot write to is
SIGSEGV.  getcpu(2) is here too: one CPU, one node.

Not modelled: ``vsyscall=emulate`` (a readable page) and ``vsyscall=none``; seccomp filters on
vsyscalls; the kernel's rate-limited log line for a bad vsyscall.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cpu.exceptions import GuestFault, PFError, Vector
from cpu.memory import MASK64, PAGE_SHIFT
from emu.user.linux import Errno
from emu.user.sysent import syscall

if TYPE_CHECKING:
    from emu.user.kernel import Kernel

VSYSCALL_PAGE = 0xFFFF_FFFF_FF60_0000
ENTRIES = {0x000: 96, 0x400: 201, 0x800: 309}
"""Offset in the page -> the system call number it stands for: gettimeofday, time, getcpu."""


def emulate(k: Kernel, fault: GuestFault) -> GuestFault | None:
    """Carry out a call into the vsyscall page if ``fault`` (a CPU exception in the guest) is one: None when
    it was, else the fault to deliver: ``fault`` itself, or #GP (SIGSEGV with SI_KERNEL, as Linux's
    ``force_sig(SIGSEGV)``) for a bad vsyscall."""
    st = k.state
    address = fault.address
    if (fault.vector != Vector.PF or not (fault.error_code or 0) & PFError.I or address is None
            or address >> PAGE_SHIFT != VSYSCALL_PAGE >> PAGE_SHIFT or st.rip != address):
        return fault
    bad = GuestFault(Vector.GP, 0, detail=f"bad vsyscall at {address:#x}")
    nr = ENTRIES.get(address & 0xFFF)
    if nr is None:
        return bad
    try:
        caller = int.from_bytes(k.mem.read(st.rsp, 8), "little")
    except GuestFault:
        return bad
    saved = st.rax
    st.rax = nr
    k.handle()
    if st.rax == -Errno.EFAULT & MASK64:
        st.rax = saved
        return bad
    st.rip = caller
    st.rsp = (st.rsp + 8) & MASK64
    return None


@syscall("getcpu")
def getcpu(k: Kernel, cpu: int, node: int, cache: int) -> int:
    """getcpu(2): one CPU, one NUMA node (the vsyscall page's third entry point calls it too)."""
    for address in (cpu, node):
        if address:
            k.mem.write(address, bytes(4))
    return 0
