"""The `callscope` command line as a newcomer meets it: a fresh data directory each time."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CALLSCOPE = Path(sys.executable).with_name("callscope")


def run(args, data_dir, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCOPE_")}
    environ.update({"CALLSCOPE_DATA_DIR": str(data_dir), "CALLSCOPE_LOG_FORMAT": "json", **env})
    return subprocess.run(
        [str(CALLSCOPE), *args], env=environ, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def shared_data_dir(tmp_path_factory):
    """One data directory for the read-only checks (migrating costs seconds each time)."""
    return tmp_path_factory.mktemp("cli-data")


@pytest.mark.parametrize(
    "command", ["import", "capture", "serve", "purge", "createmanager", "demo", "synth", "audit"]
)
def test_every_subcommand_is_there(shared_data_dir, command):
    result = run([command, "--help"], shared_data_dir)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_createmanager_on_a_fresh_data_directory(tmp_path):
    data = tmp_path / "fresh"
    result = run(["createmanager", "--username", "kanri"], data)
    assert result.returncode == 0, result.stderr
    assert "One-time password" in result.stdout
    assert (data / "callscope.sqlite3").exists()
    again = run(["createmanager", "--username", "kanri"], data)
    assert again.returncode != 0
    assert "already exists" in again.stderr


def test_configuration_error_stops_with_the_variable_name(tmp_path):
    result = run(["createmanager"], tmp_path, CALLSCOPE_RETENTION_DAYS="fourteen")
    assert result.returncode == 2
    assert "CALLSCOPE_RETENTION_DAYS" in result.stderr
    result = run(["createmanager"], tmp_path, CALLSCOPE_NO_SUCH_THING="1")
    assert result.returncode == 2
    assert "CALLSCOPE_NO_SUCH_THING: unknown setting" in result.stderr


def test_logs_are_json_lines_in_utc(tmp_path):
    result = run(["createmanager"], tmp_path / "logs")
    lines = [line for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines, result.stderr
    entry = json.loads(lines[0])
    assert entry["time"].endswith("+00:00")
    assert {"level", "logger", "message"} <= set(entry)


def test_capture_needs_a_source(tmp_path):
    result = run(["capture"], tmp_path / "data")
    assert result.returncode != 0
    assert "give --interface" in result.stderr
