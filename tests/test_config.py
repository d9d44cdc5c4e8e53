from pathlib import Path

import pytest

from callscope.config import REGISTRY, ConfigError, check_unknown
from callscope.ingest.management.commands.configdoc import configuration_markdown

REPO = Path(__file__).resolve().parent.parent


def test_configuration_doc_is_generated_from_the_registry():
    documented = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    # regenerate with: callscope configdoc > docs/configuration.md
    assert documented == configuration_markdown()


def test_unknown_variable_is_refused_with_its_name():
    with pytest.raises(ConfigError, match="CALLSCOPE_RETENTON_DAYS: unknown setting"):
        check_unknown({"CALLSCOPE_RETENTON_DAYS": "3", "PATH": "/bin"})


def test_secret_file_variant_is_known():
    check_unknown({"CALLSCOPE_SECRET_KEY_FILE": "/run/secret"})


def test_malformed_value_names_the_variable():
    setting = REGISTRY["CALLSCOPE_RETENTION_DAYS"]
    with pytest.raises(ConfigError, match="CALLSCOPE_RETENTION_DAYS: malformed value 'two weeks'"):
        setting.read({"CALLSCOPE_RETENTION_DAYS": "two weeks"})
    assert setting.read({"CALLSCOPE_RETENTION_DAYS": "30"}) == 30
    assert setting.read({}) == 14


def test_secret_read_from_file(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("s3cr3t\n", encoding="utf-8")
    setting = REGISTRY["CALLSCOPE_SECRET_KEY"]
    assert setting.read({"CALLSCOPE_SECRET_KEY_FILE": str(secret)}) == "s3cr3t"
    with pytest.raises(ConfigError, match="set either"):
        setting.read({"CALLSCOPE_SECRET_KEY_FILE": str(secret), "CALLSCOPE_SECRET_KEY": "x"})
    with pytest.raises(ConfigError, match="CALLSCOPE_SECRET_KEY_FILE: cannot read"):
        setting.read({"CALLSCOPE_SECRET_KEY_FILE": str(tmp_path / "missing")})


def test_master_key_must_be_256_bits():
    setting = REGISTRY["CALLSCOPE_AUDIO_MASTER_KEY"]
    with pytest.raises(ConfigError, match="64 hexadecimal digits"):
        setting.read({"CALLSCOPE_AUDIO_MASTER_KEY": "abcd"})
    assert setting.read({"CALLSCOPE_AUDIO_MASTER_KEY": "00" * 32}) == bytes(32)
