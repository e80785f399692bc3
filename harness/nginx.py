"""deploy/nginx.conf rewritten for a run here: its ports, upstream servers and paths (tests/deploy and bench)."""

from __future__ import annotations

import grp
import os
import pwd
import re
from pathlib import Path

from harness.processes import ROOT

CONF = ROOT / "deploy" / "nginx.conf"


def render(conf: str, listen_port: int, upstream_ports: list[int], prefix: Path) -> str:
    """deploy/nginx.conf for this test: its listen port, upstream servers, paths under PREFIX, the current user."""

    def sub(pattern: str, replacement, text: str, count: int = 0) -> str:
        new, done = re.subn(pattern, replacement, text, count=count, flags=re.M)
        assert done, f"deploy/nginx.conf no longer matches {pattern!r}: update render() in harness/nginx.py"
        return new

    # Workers run as the current user (`user` matters only to a root master), who can reach PREFIX.
    account = f"{pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name}"
    conf = sub(r"^([ \t]*)user\s[^;]*;", rf"\g<1>user {account};", conf)
    conf = sub(r"^([ \t]*)listen\s[^;]*;", rf"\g<1>listen 127.0.0.1:{listen_port};", conf)
    indent = re.search(r"^([ \t]*)server 127\.0\.0\.1:\d+;", conf, re.M)
    assert indent, "deploy/nginx.conf has no `server 127.0.0.1:PORT;` line in its upstream"
    servers = "".join(f"{indent.group(1)}server 127.0.0.1:{port};\n" for port in upstream_ports)
    conf = sub(r"(?:^[ \t]*server 127\.0\.0\.1:\d+;\n)+", lambda _: servers, conf, count=1)
    # Every absolute path under /var or /run (pid, logs, temp dirs) moves into PREFIX, named by its last part.
    conf = sub(r"(?<=\s)/(?:var|run)/\S*?([^/\s;]+)(?=[;\s])", lambda m: str(prefix / m.group(1)), conf)
    assert not re.search(r"\s/(?:var|run)/", conf)
    return conf
