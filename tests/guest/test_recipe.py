"""The default guest image recipe (emu/machine/guest.py, guest_images/): its hash, its kernel config fragment, its
initramfs list and init script, the cache, and (slow) a full build checked with the tools a user would use."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from emu.machine.guest import (
    FORBIDDEN_OPTIONS,
    RECIPE_DIR,
    REQUIRED_OPTIONS,
    GuestBuildError,
    GuestImage,
    _Build,
    config_problems,
    default_guest,
    parse_config,
    recipe_hash,
)


@pytest.fixture
def recipe_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "guest_images"
    shutil.copytree(RECIPE_DIR, copy)
    return copy


def fragment() -> dict[str, str | None]:
    return parse_config((RECIPE_DIR / "kernel.config").read_text())


# --- the hash ---

def test_recipe_hash_is_stable_across_calls_and_copies(recipe_copy):
    assert recipe_hash() == recipe_hash()
    assert recipe_hash(recipe_copy) == recipe_hash()


def test_recipe_hash_is_sixteen_hex_digits():
    digest = recipe_hash()
    assert len(digest) == 16 and int(digest, 16) >= 0


def test_changing_a_fragment_line_changes_the_hash(recipe_copy):
    before = recipe_hash(recipe_copy)
    fragment_path = recipe_copy / "kernel.config"
    edited = fragment_path.read_text().replace("CONFIG_PRINTK_TIME=y", "# CONFIG_PRINTK_TIME is not set")
    fragment_path.write_text(edited)
    assert recipe_hash(recipe_copy) != before


def test_changing_the_disk_contents_changes_the_hash(recipe_copy):
    before = recipe_hash(recipe_copy)
    (recipe_copy / "disk" / "hello.txt").write_text("something else\n")
    assert recipe_hash(recipe_copy) != before


def test_adding_a_file_changes_the_hash(recipe_copy):
    before = recipe_hash(recipe_copy)
    (recipe_copy / "disk" / "extra.txt").write_text("")
    assert recipe_hash(recipe_copy) != before


def test_editing_the_readme_keeps_the_hash(recipe_copy):
    before = recipe_hash(recipe_copy)
    (recipe_copy / "README.md").write_text("a different description\n")
    assert recipe_hash(recipe_copy) == before


# --- the kernel config fragment ---

@pytest.mark.parametrize("option", REQUIRED_OPTIONS)
def test_fragment_sets_required_option_to_y(option):
    assert fragment().get(option) == "y"


@pytest.mark.parametrize("option", FORBIDDEN_OPTIONS)
def test_fragment_turns_off_option(option):
    options = fragment()
    assert option in options and options[option] is None


def test_fragment_picks_lz4_as_the_only_kernel_compression():
    compressions = {name: value for name, value in fragment().items() if name.startswith("KERNEL_")}
    assert [name for name, value in compressions.items() if value == "y"] == ["KERNEL_LZ4"]


def test_config_check_accepts_a_config_that_honours_the_fragment():
    text = (RECIPE_DIR / "kernel.config").read_text()
    assert config_problems(text, text) == []


def test_config_check_names_an_option_kconfig_dropped():
    text = (RECIPE_DIR / "kernel.config").read_text()
    final = text.replace("CONFIG_VIRTIO_BLK=y", "# CONFIG_VIRTIO_BLK is not set")
    assert config_problems(final, text) == ["CONFIG_VIRTIO_BLK: wanted =y, got not set"]


def test_config_check_names_a_decompressor_left_on():
    text = (RECIPE_DIR / "kernel.config").read_text()
    final = text + "\nCONFIG_RD_GZIP=y\n"
    assert config_problems(final, text) == ["CONFIG_RD_GZIP: wanted not set, got =y"]


# --- initramfs and init ---

def initramfs_entries() -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for line in (RECIPE_DIR / "initramfs.list").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            kind, name, *rest = line.split()
            entries[name] = [kind, *rest]
    return entries


def test_initramfs_list_holds_init_busybox_and_the_console_node():
    entries = initramfs_entries()
    assert entries["/init"][0] == "file"
    assert entries["/bin/busybox"][0] == "file"
    assert entries["/dev/console"] == ["nod", "0600", "0", "0", "c", "5", "1"]


@pytest.mark.parametrize("applet", ["sh", "echo", "cat", "ls", "mount", "uname", "sync", "poweroff", "reboot",
                                    "mkdir", "sleep", "dd", "wc", "head", "setsid", "cttyhack"])
def test_initramfs_links_applet_to_busybox(applet):
    assert initramfs_entries()[f"/bin/{applet}"][:2] == ["slink", "busybox"]


def test_every_initramfs_entry_is_owned_by_root():
    for name, (kind, *fields) in initramfs_entries().items():
        uid_gid = fields[2:4] if kind in ("file", "slink") else fields[1:3]
        assert uid_gid == ["0", "0"], name


def test_init_prints_the_marker_line_and_runs_a_shell_on_the_console():
    lines = [line.strip() for line in (RECIPE_DIR / "init").read_text().splitlines()]
    assert lines[0] == "#!/bin/sh"
    assert "echo 'emu-guest: init reached'" in lines
    assert "setsid cttyhack sh" in lines
    assert lines[-1] == "poweroff -f"


def test_disk_holds_hello_txt():
    assert (RECIPE_DIR / "disk" / "hello.txt").read_text() == "hello from the virtio disk\n"


# --- the cache ---

def test_a_complete_cache_directory_is_returned_without_building(tmp_path):
    directory = tmp_path / recipe_hash()
    directory.mkdir()
    for path in GuestImage(directory).paths().values():
        path.write_bytes(b"")
    messages: list[str] = []
    image = default_guest(messages.append, cache_dir=tmp_path)
    assert image.directory == directory and messages == []


# --- build steps ---

def test_a_failed_step_shows_the_end_of_its_log_and_where_the_whole_log_is(tmp_path):
    build = _Build(RECIPE_DIR, "0" * 16, tmp_path, lambda message: None)
    build.logs.mkdir()
    with pytest.raises(GuestBuildError) as failure:
        build.command("counting", ["sh", "-c", "seq 1 40; exit 3"])
    message = str(failure.value)
    assert message.startswith("step `counting` failed (exit status 3): sh -c seq 1 40; exit 3\n")
    shown = [line.strip() for line in message.splitlines()[1:-1]]
    assert shown == [str(number) for number in range(11, 41)]
    assert message.endswith(f"full log: {tmp_path / 'logs' / 'counting.log'}")


# --- a full build (minutes the first time; then the cache answers) ---

@pytest.fixture(scope="module")
def built() -> GuestImage:
    return default_guest()


def run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_built_kernel_config_has_every_required_option_set(built):
    final = parse_config(built.config.read_text())
    assert {option: final.get(option) for option in REQUIRED_OPTIONS} == dict.fromkeys(REQUIRED_OPTIONS, "y")
    assert config_problems(built.config.read_text(), (RECIPE_DIR / "kernel.config").read_text()) == []


@pytest.mark.slow
def test_built_kernel_is_a_bzimage_and_vmlinux_has_symbols(built):
    assert built.kernel.read_bytes()[0x202:0x206] == b"HdrS"  # the boot protocol's setup header magic
    assert built.vmlinux.read_bytes()[:4] == b"\x7fELF"
    assert " T start_kernel\n" in built.system_map.read_text()


@pytest.mark.slow
def test_built_initramfs_lists_init_and_busybox(built):
    with open(built.initrd, "rb") as archive:
        names = subprocess.run(["cpio", "-t"], stdin=archive, capture_output=True, text=True, check=True).stdout
    assert {"init", "bin/busybox", "bin/sh", "dev/console"} <= set(names.split())


@pytest.mark.slow
def test_built_disk_holds_hello_txt(built):
    assert run(["debugfs", "-R", "cat /hello.txt", str(built.disk)]) == "hello from the virtio disk\n"
