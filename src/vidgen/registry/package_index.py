"""Find one wheel of `name==version` on a package index without pip (environments made by uv have none).

The index is the one pip would use: `PIP_INDEX_URL`, else uv's `UV_DEFAULT_INDEX` / `UV_INDEX_URL`, else
`index-url` in pip's configuration files (`PIP_CONFIG_FILE`, the site, user and global `pip.conf`), else
PyPI. It is read through the standard simple API: JSON (PEP 691) when the index offers it, HTML (PEP 503)
otherwise. Of the release's wheels, the one whose tags this interpreter supports first (as pip orders
them) is taken; the index's sha256 of it, when given, is checked after download, and the member inside it
is then checked against the entry's own pin, as for every source.
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

DEFAULT_INDEX = "https://pypi.org/simple/"
_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
_TIMEOUT_S = 60


class PackageIndexError(Exception):
    """The index could not be read, or holds no usable wheel of the release."""


@dataclass(frozen=True)
class WheelLink:
    filename: str
    url: str
    sha256: str | None


def pip_config_files() -> list[Path]:
    """pip's configuration files, lowest precedence first (global, user, site, then PIP_CONFIG_FILE)."""
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)
    files = [Path(d) / "pip" / "pip.conf" for d in xdg_dirs if d] + [Path("/etc/pip.conf")]
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    files += [Path.home() / ".pip" / "pip.conf", config_home / "pip" / "pip.conf", Path(sys.prefix) / "pip.conf"]
    if os.environ.get("PIP_CONFIG_FILE") and os.environ["PIP_CONFIG_FILE"] != os.devnull:
        files.append(Path(os.environ["PIP_CONFIG_FILE"]))
    return files


def index_url() -> str:
    """The package index pip (or uv) would download from."""
    for variable in ("PIP_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX_URL"):
        if os.environ.get(variable):
            return os.environ[variable]
    found = None
    for path in pip_config_files():
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue  # pip would stop on a broken file; here the next one (or PyPI) still names an index
        for section in ("global", "download"):  # a command's section overrides [global]
            if parser.has_option(section, "index-url"):
                found = parser.get(section, "index-url").strip()
    return found or DEFAULT_INDEX


def _request(url: str, accept: str | None = None) -> urllib.request.Request:
    """A request with the URL's user:password moved into an Authorization header (urllib ignores them)."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Accept": accept} if accept else {}
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        url = shown_url(url)
    return urllib.request.Request(url, headers=headers)


def open_url(url: str, accept: str | None = None) -> Any:
    """urlopen with index credentials handled; http, https and file URLs only."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https", "file"):
        raise PackageIndexError(f"index URL {url!r}: only http, https and file URLs are read")
    return urllib.request.urlopen(_request(url, accept), timeout=_TIMEOUT_S)


class _Anchors(HTMLParser):
    """The <a href> links of a PEP 503 project page, with their text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, dict[str, str | None]]] = []
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.links.append((self._open.get("href") or "", "".join(self._text).strip(), self._open))
            self._open = None


def project_files(index: str, project: str) -> list[WheelLink]:
    """Every file the index lists for `project` (yanked ones left out), with its sha256 when given."""
    from packaging.utils import canonicalize_name

    page = urllib.parse.urljoin(index.rstrip("/") + "/", canonicalize_name(project) + "/")
    try:
        with open_url(page, _ACCEPT) as response:
            kind = (response.headers.get("Content-Type") or "").split(";")[0].strip()
            body = response.read()
    except PackageIndexError:
        raise
    except (OSError, ValueError) as err:
        raise PackageIndexError(f"cannot read {shown_url(page)}: {err}") from None
    links = []
    if kind == "application/vnd.pypi.simple.v1+json":
        try:
            files = json.loads(body)["files"]
        except (ValueError, KeyError, TypeError):
            raise PackageIndexError(f"{shown_url(page)}: not a simple-API JSON page") from None
        for item in files:
            if item.get("yanked"):
                continue
            sha = (item.get("hashes") or {}).get("sha256")
            links.append(WheelLink(item["filename"], urllib.parse.urljoin(page, item["url"]), sha))
        return links
    anchors = _Anchors()
    anchors.feed(body.decode("utf-8", "replace"))
    for href, text, attrs in anchors.links:
        if "data-yanked" in attrs:
            continue
        url, _, fragment = href.partition("#")
        name, _, value = fragment.partition("=")
        filename = text or Path(urllib.parse.urlsplit(url).path).name
        links.append(WheelLink(filename, urllib.parse.urljoin(page, url), value if name == "sha256" else None))
    return links


def find_wheel(requirement: str, index: str | None = None) -> WheelLink:
    """The wheel of `requirement` (name==version, checked by the caller) this interpreter would install."""
    from packaging.tags import sys_tags
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
    from packaging.version import InvalidVersion, Version

    name, _, version = requirement.partition("==")
    index = index or index_url()
    wanted_name, wanted_version = canonicalize_name(name), Version(version)
    candidates = {}
    for link in project_files(index, name):
        if not link.filename.endswith(".whl"):
            continue
        try:
            wheel_name, wheel_version, _, tags = parse_wheel_filename(link.filename)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if wheel_name == wanted_name and wheel_version == wanted_version:
            for tag in tags:
                candidates.setdefault(tag, link)
    for tag in sys_tags():  # most specific first, as pip prefers
        if tag in candidates:
            return candidates[tag]
    raise PackageIndexError(f"{shown_url(index)} has no wheel of {requirement} for this Python and platform")


def shown_url(url: str) -> str:
    """`url` without its credentials, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url
    host = parts.hostname or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host))
