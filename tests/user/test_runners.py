"""`emu run` as the runner of other tools, and `emu binfmt`.

CMake + CTest: tests/user/programs/ctest_project, configured as a cross build whose
CMAKE_CROSSCOMPILING_EMULATOR is `python -m emu run`, built with the host's gcc, and run by `ctest` (the
threaded test is labelled `threads`).  Cargo: a crate whose
`.cargo/config.toml` names emu as the runner, run by `cargo run`; a Go package's tests run by
`go test -exec` (each when the tool is installed).  binfmt: the
printed line's magic and mask select x86-64 ELF files (gcc's, static and PIE) and nothing else, and
`--install` writes an interpreter script that runs a program as binfmt_misc would start it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PROGRAMS = Path(__file__).resolve().parent / "programs"
EMULATOR = [sys.executable, "-m", "emu", "run"]
ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "LC_ALL": "C"}
TIMEOUT = 600


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=TIMEOUT, check=False, **kw)


@pytest.fixture(scope="module")
def ctest_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cmake") is None or shutil.which("ctest") is None:
        pytest.fail("cmake is not installed; these tests need it: apt-get install -y cmake")
    build = tmp_path_factory.mktemp("ctest_build")
    configure = _run(["cmake", "-S", str(PROGRAMS / "ctest_project"), "-B", str(build), "-DCMAKE_C_COMPILER=gcc",
                      "-DCMAKE_SYSTEM_NAME=Linux", "-DCMAKE_SYSTEM_PROCESSOR=x86_64",
                      f"-DCMAKE_CROSSCOMPILING_EMULATOR={';'.join(EMULATOR)}"])
    assert configure.returncode == 0, configure.stdout + configure.stderr
    compiled = _run(["cmake", "--build", str(build)])
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    return build


def test_ctest_runs_every_test_through_the_emulator(ctest_build: Path) -> None:
    shown = _run(["ctest", "--show-only=json-v1"], cwd=ctest_build)
    tests = {t["name"]: t["command"] for t in json.loads(shown.stdout)["tests"]}
    assert set(tests) == {"hello", "arguments", "files", "exit_status", "threads"}
    assert all(command[:4] == EMULATOR for command in tests.values()), tests


def test_ctest_passes_with_emu_as_the_crosscompiling_emulator(ctest_build: Path) -> None:
    result = _run(["ctest", "--output-on-failure", "-LE", "threads"], cwd=ctest_build)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "100% tests passed, 0 tests failed out of 4" in result.stdout


def test_ctest_passes_the_threaded_test(ctest_build: Path) -> None:
    result = _run(["ctest", "--output-on-failure", "-L", "threads"], cwd=ctest_build)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cargo_run_uses_emu_as_the_runner(tmp_path: Path) -> None:
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed")
    crate = tmp_path / "crate"
    (crate / "src").mkdir(parents=True)
    (crate / ".cargo").mkdir()
    (crate / "Cargo.toml").write_text('[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n')
    (crate / "src" / "main.rs").write_text(
        'fn main() {\n    let args: Vec<String> = std::env::args().skip(1).collect();\n'
        '    println!("hello {}", args.join("+"));\n    std::process::exit(args.len() as i32);\n}\n')
    runner = ", ".join(json.dumps(word) for word in EMULATOR)
    (crate / ".cargo" / "config.toml").write_text(f"[target.x86_64-unknown-linux-gnu]\nrunner = [{runner}]\n")
    result = _run(["cargo", "run", "-q", "--offline", "--", "a", "b c"], cwd=crate)
    assert (result.returncode, result.stdout) == (2, "hello a+b c\n"), result.stderr
    assert re.search(r"Running `.*-m emu run", _run(["cargo", "run", "--offline"], cwd=crate).stderr)


def test_go_test_runs_the_test_binary_through_emu(tmp_path: Path) -> None:
    """The Go runtime reserves its arenas (PROT_NONE) and starts threads at once."""
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    (tmp_path / "go.mod").write_text("module hello\n\ngo 1.18\n")
    (tmp_path / "hello_test.go").write_text(
        'package hello\n\nimport "testing"\n\n'
        'func TestAdd(t *testing.T) {\n\tif 2+2 != 4 {\n\t\tt.Fatal("sum")\n\t}\n}\n')
    result = subprocess.run(["go", "test", "-exec", " ".join(EMULATOR), "-v", "."], capture_output=True, text=True,
                            cwd=tmp_path, env={**ENV, "CGO_ENABLED": "0"}, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--- PASS: TestAdd" in result.stdout


# -- emu binfmt --------------------------------------------------------------------------------------
def _fields(line: str) -> list[str]:
    assert line.startswith(":") and line.count(":") == 7, line
    return line[1:].split(":")


def _unescape(text: str) -> bytes:
    assert re.fullmatch(r"(\\x[0-9a-f]{2})+", text), text
    return bytes(int(h, 16) for h in text[2:].split("\\x"))


def _selects(magic: bytes, mask: bytes, header: bytes) -> bool:
    """binfmt_misc's test (fs/binfmt_misc.c ``check_file``): the header and the magic agree in every masked bit."""
    return all((h ^ g) & m == 0 for h, m, g in zip(header[:len(magic)], mask, magic, strict=True))


@pytest.fixture(scope="module")
def elf_headers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The first 20 bytes of gcc's x86-64 executables (static ET_EXEC and PIE ET_DYN), and of the same
    headers made 32-bit, big-endian, aarch64 and a relocatable object."""
    directory = tmp_path_factory.mktemp("binfmt")
    (directory / "main.c").write_text("int main(void) { return 0; }\n")
    headers = {}
    for name, flags in (("static", ["-static", "-no-pie"]), ("pie", ["-pie", "-fPIE"]), ("object", ["-c"])):
        out = directory / name
        subprocess.run(["gcc", *flags, "-o", str(out), str(directory / "main.c")], check=True)
        headers[name] = out.read_bytes()[:20]
    pie = headers["pie"]
    headers["aarch64"] = pie[:18] + (183).to_bytes(2, "little")
    headers["i386-class"] = pie[:4] + b"\x01" + pie[5:]
    headers["big-endian"] = pie[:5] + b"\x02" + pie[6:]
    return headers


def test_the_binfmt_line_selects_x86_64_executables_only(elf_headers: dict[str, bytes]) -> None:
    result = _run(EMULATOR[:-1] + ["binfmt", "--interpreter", "/opt/emu/x86_64"])
    assert result.returncode == 0, result.stderr
    name, kind, offset, magic, mask, interpreter, flags = _fields(result.stdout.strip())
    assert (name, kind, offset, interpreter, flags) == ("emu-x86_64", "M", "", "/opt/emu/x86_64", "P")
    magic_bytes, mask_bytes = _unescape(magic), _unescape(mask)
    assert len(magic_bytes) == len(mask_bytes) == 20
    chosen = {name for name, header in elf_headers.items() if _selects(magic_bytes, mask_bytes, header)}
    assert chosen == {"static", "pie"}


def test_binfmt_install_refuses_an_x86_64_host_and_a_missing_binfmt_misc(tmp_path: Path) -> None:
    binfmt = EMULATOR[:-1] + ["binfmt", "--install", "--interpreter", str(tmp_path / "interp")]
    result = _run(binfmt + ["--binfmt-dir", str(tmp_path)])
    if platform.machine() in ("x86_64", "amd64"):
        assert result.returncode == 1
        assert result.stderr.startswith("emu: error: this host is x86_64: its kernel runs x86-64 programs itself")
        assert result.stderr.count("\n") == 1
    result = _run(binfmt + ["--force", "--binfmt-dir", str(tmp_path)])
    assert (result.returncode, result.stderr) == (1, f"emu: error: binfmt_misc is not mounted at {tmp_path}: mount it "
                                                     f"first (mount -t binfmt_misc binfmt_misc {tmp_path})\n")
    assert not (tmp_path / "interp").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="--install checks for root before it writes anything")
def test_binfmt_install_writes_an_interpreter_that_runs_programs_as_binfmt_misc_starts_them(
        tmp_path: Path, static_program: str) -> None:
    """A stand-in binfmt_misc directory (its `register` a plain file): the line lands there, and the script
    it names, started the way the kernel starts it with flag P (FILE ARGV0 ARGS...), runs the program
    under emu with its own argv[0] and the sysroot."""
    (tmp_path / "register").write_text("")
    interpreter = tmp_path / "libexec" / "emu-x86_64"
    result = _run(EMULATOR[:-1] + ["binfmt", "--install", "--force", "-L", str(tmp_path / "root"),
                                   "--interpreter", str(interpreter), "--binfmt-dir", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    assert _fields((tmp_path / "register").read_text())[5] == str(interpreter)
    assert f"-L {tmp_path / 'root'}" in interpreter.read_text()
    env = {"PATH": "/usr/bin:/bin", "GREETING": "hi"}
    ran = subprocess.run([str(interpreter), static_program, "short-name", "one", "two words"], capture_output=True,
                         text=True, env=env, timeout=TIMEOUT, check=False)
    assert (ran.returncode, ran.stdout) == (5, "argv[0]=short-name\nargv[1]=one\nargv[2]=two words\nGREETING=hi\n")
    assert "sysroot" in ran.stderr         # the sysroot does not exist: emu says so, and runs with the host's paths
