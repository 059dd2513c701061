"""A throwaway PostgreSQL cluster for the team-mode tests: initdb into a temp dir, pg_ctl on 127.0.0.1.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user (or ``nobody``).
The server binaries come from the distribution (``.ci/run`` installs them where missing).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def bindir() -> Path:
    """Where initdb, pg_ctl and postgres are."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), reverse=True)
    if found:
        return Path(found[0]).parent
    exe = shutil.which("postgres")
    if exe:
        return Path(exe).parent
    raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql (or run .ci/run)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One cluster: start, stop (fast, like a crash or a restart), start again."""

    def __init__(self) -> None:
        self.bin = bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="tokentop-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.user = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    self.user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            if self.user is None:
                raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL")
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "tokentop", "--auth=trust", "-E", "UTF8", "--no-sync",
                  "--no-instructions")
        # The superuser without a password; every other role must authenticate (the auth-failure tests).
        hba = self.data / "pg_hba.conf"
        hba.write_text("local all all trust\nhost all tokentop 127.0.0.1/32 trust\n"
                       "host all all 127.0.0.1/32 scram-sha-256\n")
        if self.user is not None:
            os.chown(hba, self.user.pw_uid, self.user.pw_gid)
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user.pw_name, "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=self.dir)
        if r.returncode != 0:
            log = (self.dir / "log").read_text() if (self.dir / "log").exists() else ""
            raise RuntimeError(f"{tool} failed: {r.stderr.strip() or r.stdout.strip()}\n{log[-2000:]}")

    @property
    def url(self) -> str:
        """Superuser URL of the ``postgres`` database."""
        return self.url_of("postgres")

    def url_of(self, db: str) -> str:
        """URL of one database."""
        return f"postgresql://tokentop@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        """Start (waits until it accepts connections)."""
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop (``immediate`` is a crash: no shutdown checkpoint)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """Stop and remove everything."""
        try:
            self.stop("immediate")
        except RuntimeError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
