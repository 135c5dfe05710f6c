"""What the notebook and browser tests need: a sandbox environment, Voila, Chromium.

Run ``python tests/browser_support.py install`` to install Debian's Chromium when it is missing
(``apt-get``, as root), and ``python tests/browser_support.py serve`` to serve notebook 03 on a
sandbox by hand (prints the URL; Ctrl-C stops it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
#: Page size of the notebook sandbox: few requests per read, so the 2/s client limit costs little.
PAGE_SIZE = 1000


def chromium_path() -> str | None:
    """The system Chromium, or None."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


def install_chromium() -> str:
    """Install Debian's ``chromium`` package when it is missing; return its path."""
    found = chromium_path()
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
    found = chromium_path()
    if not found:
        raise RuntimeError("chromium is still missing after apt-get install")
    return found


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def notebook_env(base_url: str, token: str, cache_dir: Path) -> dict[str, str]:
    """Environment for kernels reading from a sandbox: ``JETTI_*`` plus the repo on the path."""
    env = dict(os.environ)
    env.update(
        JETTI_BASE_URL=base_url,
        JETTI_API_TOKEN=token,
        JETTI_CACHE_PATH=str(cache_dir / "http-cache.sqlite"),
        JETTI_PAGE_SIZE=str(PAGE_SIZE),
        MPLBACKEND="module://matplotlib_inline.backend_inline",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
    )
    return env


def wait_port(port: int, *, timeout: float = 60.0,
              proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections (or raise if the server died)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port} after {timeout:.0f} s")
        time.sleep(0.2)


@contextlib.contextmanager
def serve_voila(notebook: Path, env: Mapping[str, str], *, log: Path | None = None
                ) -> Iterator[str]:
    """Serve ``notebook`` with Voila on a free 127.0.0.1 port; yield its URL; stop it after."""
    port = free_port()
    command = [sys.executable, "-m", "voila", str(notebook), "--no-browser",
               f"--port={port}", "--Voila.ip=127.0.0.1",
               "--VoilaConfiguration.show_tracebacks=True"]
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(command, env=dict(env), cwd=notebook.parent, stdout=out,
                            stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc=proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


def _serve_by_hand() -> None:
    from jetti_frames.sandbox import Sandbox
    from jetti_frames.settings import SANDBOX_TOKEN

    cache = Path(os.environ.get("TMPDIR", "/tmp")) / "jetti-voila-cache"
    cache.mkdir(exist_ok=True)
    with Sandbox(rate="off", max_limit=PAGE_SIZE) as sandbox:
        env = notebook_env(sandbox.base_url, SANDBOX_TOKEN, cache)
        with serve_voila(NOTEBOOKS / "03-query-form.ipynb", env) as url:
            print(url, flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    action = sys.argv[1] if len(sys.argv) > 1 else "install"
    if action == "install":
        print(install_chromium())
    elif action == "serve":
        _serve_by_hand()
    else:
        raise SystemExit(f"usage: {sys.argv[0]} [install|serve]")
