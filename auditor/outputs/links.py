"""Links from an alert to where a person looks next: the object's page and its drift history
in ``serve`` (at ``serve.public-url``), and the commit on the Git host when the source's URL
names one (GitHub, GitLab, Bitbucket, including their self-hosted hosts by name, and SSH
forms). Pure string work."""

from __future__ import annotations

import re
from urllib.parse import quote

_SCP = re.compile(r"^(?:[\w.-]+@)?([\w.-]+):(?!//)(.+)$")  # git@github.com:org/repo.git


def _web_base(repo: str) -> tuple[str, str] | None:
    """``(host, https://host/owner/repo)`` of a Git remote URL, or None for a local path."""
    url = repo.strip()
    if url.startswith(("https://", "http://", "ssh://", "git://")):
        rest = url.split("://", 1)[1]
        rest = rest.split("@", 1)[1] if "@" in rest.split("/", 1)[0] else rest
        host, _, path = rest.partition("/")
        host = host.split(":", 1)[0]  # ssh://git@host:7999/…: the port is not the web's
    else:
        match = _SCP.match(url)
        if match is None:
            return None
        host, path = match.group(1), match.group(2)
    path = path.strip("/").removesuffix(".git")
    if not host or not path or "." not in host:
        return None
    # Bitbucket Server's clone URLs carry scm/: the web pages do not.
    path = path.removeprefix("scm/")
    return host.lower(), f"https://{host}/{path}"


def commit_url(repo: str, sha: str) -> str | None:
    """The web page of commit ``sha`` of ``repo`` on its Git host, when the host is known."""
    if not sha or not re.fullmatch(r"[0-9a-f]{7,64}", sha):
        return None
    found = _web_base(repo)
    if found is None:
        return None
    host, base = found
    if "github" in host:
        return f"{base}/commit/{sha}"
    if "gitlab" in host:
        return f"{base}/-/commit/{sha}"
    if "bitbucket" in host:
        return f"{base}/commits/{sha}"
    return None


def object_url(public_url: str, group: str, kind: str, namespace: str, name: str, *,
               cluster: str = "") -> str:
    """``serve``'s page of one object (``_`` for the core group and for no namespace)."""
    base = public_url.rstrip("/") + (f"/c/{quote(cluster, safe='')}" if cluster else "")
    parts = [group or "_", kind, namespace or "_", name]
    return base + "/objects/" + "/".join(quote(p, safe="") for p in parts)


def drift_history_url(object_page: str, drift_id: int) -> str:
    """The drift's row on its object's page, whose timeline holds its lifecycle."""
    return f"{object_page}#drift-{drift_id}"


def drift_diff_url(object_page: str, drift_id: int) -> str:
    """``serve``'s diff of the drift: the object as YAML, Git against live."""
    return f"{object_page}/diff?drift={drift_id}"
