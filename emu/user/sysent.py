"""The x86-64 Linux system call table: every number's name, and the handlers emu has.

Numbers follow the kernel's ``arch/x86/entry/syscalls/syscall_64.tbl`` (the
64-bit ABI, 0..334, then the numbers shared by all architectures from 424 on),
as syscalls(2) lists them.  A handler registers itself by name with
:func:`syscall`; the dispatcher (``Kernel.handle``, ``emu.user.kernel``) looks numbers up in
:data:`HANDLERS`.  Names without a handler exist so that an unimplemented call
is reported by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Each row: the number of its first name, then consecutive names.
_TABLE = """
0 read write open close stat fstat lstat poll lseek mmap
10 mprotect munmap brk rt_sigaction rt_sigprocmask rt_sigreturn ioctl pread64 pwrite64 readv
20 writev access pipe select sched_yield mremap msync mincore madvise shmget
30 shmat shmctl dup dup2 pause nanosleep getitimer alarm setitimer getpid
40 sendfile socket connect accept sendto recvfrom sendmsg recvmsg shutdown bind
50 listen getsockname getpeername socketpair setsockopt getsockopt clone fork vfork execve
60 exit wait4 kill uname semget semop semctl shmdt msgget msgsnd
70 msgrcv msgctl fcntl flock fsync fdatasync truncate ftruncate getdents getcwd
80 chdir fchdir rename mkdir rmdir creat link unlink symlink readlink
90 chmod fchmod chown fchown lchown umask gettimeofday getrlimit getrusage sysinfo
100 times ptrace getuid syslog getgid setuid setgid geteuid getegid setpgid
110 getppid getpgrp setsid setreuid setregid getgroups setgroups setresuid getresuid setresgid
120 getresgid getpgid setfsuid setfsgid getsid capget capset rt_sigpending rt_sigtimedwait rt_sigqueueinfo
130 rt_sigsuspend sigaltstack utime mknod uselib personality ustat statfs fstatfs sysfs
140 getpriority setpriority sched_setparam sched_getparam sched_setscheduler sched_getscheduler
146 sched_get_priority_max sched_get_priority_min sched_rr_get_interval mlock
150 munlock mlockall munlockall vhangup modify_ldt pivot_root _sysctl prctl arch_prctl adjtimex
160 setrlimit chroot sync acct settimeofday mount umount2 swapon swapoff reboot
170 sethostname setdomainname iopl ioperm create_module init_module delete_module get_kernel_syms
178 query_module quotactl
180 nfsservctl getpmsg putpmsg afs_syscall tuxcall security gettid readahead setxattr lsetxattr
190 fsetxattr getxattr lgetxattr fgetxattr listxattr llistxattr flistxattr removexattr lremovexattr
199 fremovexattr
200 tkill time futex sched_setaffinity sched_getaffinity set_thread_area io_setup io_destroy
208 io_getevents io_submit
210 io_cancel get_thread_area lookup_dcookie epoll_create epoll_ctl_old epoll_wait_old
216 remap_file_pages getdents64 set_tid_address restart_syscall
220 semtimedop fadvise64 timer_create timer_settime timer_gettime timer_getoverrun timer_delete
227 clock_settime clock_gettime clock_getres
230 clock_nanosleep exit_group epoll_wait epoll_ctl tgkill utimes vserver mbind set_mempolicy
239 get_mempolicy
240 mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr kexec_load waitid
248 add_key request_key
250 keyctl ioprio_set ioprio_get inotify_init inotify_add_watch inotify_rm_watch migrate_pages
257 openat mkdirat mknodat
260 fchownat futimesat newfstatat unlinkat renameat linkat symlinkat readlinkat fchmodat faccessat
270 pselect6 ppoll unshare set_robust_list get_robust_list splice tee sync_file_range vmsplice
279 move_pages
280 utimensat epoll_pwait signalfd timerfd_create eventfd fallocate timerfd_settime timerfd_gettime
288 accept4 signalfd4
290 eventfd2 epoll_create1 dup3 pipe2 inotify_init1 preadv pwritev rt_tgsigqueueinfo perf_event_open
299 recvmmsg
300 fanotify_init fanotify_mark prlimit64 name_to_handle_at open_by_handle_at clock_adjtime syncfs
307 sendmmsg setns getcpu
310 process_vm_readv process_vm_writev kcmp finit_module sched_setattr sched_getattr renameat2
317 seccomp getrandom memfd_create
320 kexec_file_load bpf execveat userfaultfd membarrier mlock2 copy_file_range preadv2 pwritev2
329 pkey_mprotect
330 pkey_alloc pkey_free statx io_pgetevents rseq
424 pidfd_send_signal io_uring_setup io_uring_enter io_uring_register open_tree move_mount
430 fsopen fsconfig fsmount fspick pidfd_open clone3 close_range openat2 pidfd_getfd faccessat2
440 process_madvise epoll_pwait2 mount_setattr quotactl_fd landlock_create_ruleset landlock_add_rule
446 landlock_restrict_self memfd_secret process_mrelease futex_waitv set_mempolicy_home_node
"""


def _parse(table: str) -> dict[int, str]:
    names: dict[int, str] = {}
    for row in table.split("\n"):
        if not row:
            continue
        first, *words = row.split()
        assert int(first) not in names, row
        names.update(enumerate(words, start=int(first)))
    return names


NAMES: dict[int, str] = _parse(_TABLE)
"""System call number -> name."""
NUMBERS: dict[str, int] = {name: nr for nr, name in NAMES.items()}
"""System call name -> number."""


@dataclass(frozen=True)
class Entry:
    """One implemented system call."""

    name: str
    handler: Callable[..., int]
    nargs: int
    """How many of rdi, rsi, rdx, r10, r8, r9 the handler takes after the kernel."""


HANDLERS: dict[int, Entry] = {}


def syscall(*names: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Register the decorated function as the handler of the named system calls.

    The handler takes the kernel (``emu.user.kernel.Kernel``) and then as
    many raw 64-bit arguments as it declares; it returns the value for rax or
    raises ``SyscallError``.
    """
    def register(handler: Callable[..., Any]) -> Callable[..., int]:
        nargs = len(inspect.signature(handler).parameters) - 1
        for name in names:
            nr = NUMBERS[name]
            assert nr not in HANDLERS, f"{name} registered twice"
            HANDLERS[nr] = Entry(name, handler, nargs)
        return handler
    return register
