"""`callscope serve` as `make run` starts it: gunicorn, static files, first manager."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CALLSCOPE = Path(sys.executable).with_name("callscope")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, deadline: float) -> bytes:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_serve_gives_the_japanese_login_page_and_static_files(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCOPE_")}
    access_log = tmp_path / "access.log"
    env.update(
        CALLSCOPE_DATA_DIR=str(tmp_path),
        CALLSCOPE_BIND=f"127.0.0.1:{port}",
        CALLSCOPE_ACCESS_LOG=str(access_log),
    )
    server = subprocess.Popen(
        [str(CALLSCOPE), "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        base = f"http://127.0.0.1:{port}"
        login = wait_for(f"{base}/accounts/login/", time.monotonic() + 60).decode()
        assert "ログイン" in login
        assert b":root" in wait_for(f"{base}/static/console/console.css", time.monotonic() + 5)
        assert wait_for(f"{base}/static/django_htmx/htmx-2.min.js", time.monotonic() + 5)
        wait_for(f"{base}/accounts/login/?next=/calls/%3Fnumber%3D0783210987", time.monotonic() + 5)
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    assert b"one-time password" in out
    assert b"gunicorn" in err.lower() or b"Booting worker" in err
    assert b"Control socket" not in err  # no run-time control socket (webserver.py)
    # one line per request, with the server's milliseconds; never the query string (numbers)
    lines = access_log.read_text().splitlines()
    login_lines = [line for line in lines if '"GET /accounts/login/"' in line]
    assert len(login_lines) == 2
    assert all(line.split()[-1].isdigit() and line.split()[-3] == "200" for line in login_lines)
    assert "0783210987" not in access_log.read_text()
