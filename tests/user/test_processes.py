"""Processes under `emu run`: fork, execve, wait, pipes, descriptors, process groups, against the same programs
run natively: tests/user/programs/forkexec.c, and shell pipelines and subshells through Debian's dash
(/bin/sh, dynamically linked), busybox sh (busybox-static) and bash (a trap, a job, a child killed by a
signal), each command of which the emulator forks and re-executes (fork(2), execve(2), wait4(2), waitid(2),
pipe(2), dup(2), setpgid(2), setsid(2)).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

PROGRAM = Path(__file__).resolve().parent / "programs" / "forkexec.c"
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
SCRIPT = ("echo a | tr a b; echo $(echo sub) \"$(echo quoted; exit 2)\" $?; true && echo and; false || echo or; "
          "(exit 7) & wait $!; echo waited $?; (exit 3); echo subshell $?; x=$(printf '%s\\n' c b a | head -n 2); "
          "echo $x")
KILL = "; sh -c 'kill -TERM $$'; echo killed $?"


def test_fork_exec_wait_pipes_and_exec_errors_as_natively(build_static, same_as_native) -> None:
    same_as_native([str(build_static(PROGRAM, "O1"))], env=ENV)


def test_dash_pipelines_subshells_and_wait(same_as_native) -> None:
    same_as_native(["/bin/sh", "-c", SCRIPT], env=ENV)


def test_busybox_sh_pipelines_subshells_and_wait(same_as_native) -> None:
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not Path(busybox).exists():
        pytest.fail("busybox is not installed; apt-get install busybox-static")
    same_as_native([busybox, "sh", "-c", SCRIPT + KILL.replace("sh -c", f"{busybox} sh -c")], env=ENV)


def test_a_shell_script_with_exit_status(tmp_path: Path, same_as_native) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\nset -e\ncd \"$1\"\nprintf 'x\\ny\\n' > out\nread first < out\necho $first\nexit 4\n")
    script.chmod(0o755)
    same_as_native(["/bin/sh", str(script), str(tmp_path)], returncode=4, env=ENV)


def test_bash_traps_jobs_and_a_killed_child(same_as_native) -> None:
    script = ('echo a | tr a b; trap "echo trapped" USR1; kill -USR1 $$; (exit 3) & wait $!; echo waited $?; '
              'sh -c "kill -TERM \\$\\$"; echo killed $?')
    same_as_native(["/bin/bash", "-c", script], env=ENV)
