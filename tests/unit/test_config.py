from pathlib import Path

import pytest

from node.config import ConfigError, load_config, render_config


def test_defaults_use_sqlite_in_the_data_directory(tmp_path: Path):
    config = load_config(tmp_path, environ={})
    assert config.database_url == f"sqlite:///{tmp_path / 'exnode.db'}"


def test_written_config_loads(tmp_path: Path):
    (tmp_path / "exnode.toml").write_text(render_config("mca", "民政部节点", ""), encoding="utf-8")
    assert load_config(tmp_path, environ={}).node.id == "mca"


def test_environment_overrides_the_file(tmp_path: Path):
    (tmp_path / "exnode.toml").write_text(render_config("mca", "n", ""), encoding="utf-8")
    config = load_config(tmp_path, environ={"EXNODE_DATABASE_URL": "postgresql://db/x",
                                            "EXNODE_SERVER_MAX_MESSAGE_BYTES": "1024"})
    assert config.database.url == "postgresql://db/x"
    assert config.server.max_message_bytes == 1024


def test_unknown_key_is_named_with_the_file(tmp_path: Path):
    (tmp_path / "exnode.toml").write_text("[server]\nlisten_on = 'x'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, environ={})
    assert "server.listen_on" in str(caught.value) and "exnode.toml" in str(caught.value)


def test_wrong_type_is_named(tmp_path: Path):
    (tmp_path / "exnode.toml").write_text("[server]\nmax_message_bytes = 'big'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="server.max_message_bytes"):
        load_config(tmp_path, environ={})
    with pytest.raises(ConfigError, match="EXNODE_SERVER_MAX_MESSAGE_BYTES"):
        load_config(tmp_path / "none", environ={"EXNODE_SERVER_MAX_MESSAGE_BYTES": "lots"})


def test_broken_toml_is_named(tmp_path: Path):
    (tmp_path / "exnode.toml").write_text("[server\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path, environ={})


def test_a_log_format_other_than_json_or_text_is_named_with_the_file(tmp_path: Path):
    (tmp_path / "exnode.toml").write_text('[server]\nlog_format = "xml"\n')
    with pytest.raises(ConfigError, match=r"exnode\.toml: server\.log_format = 'xml'"):
        load_config(tmp_path, environ={})


def test_the_checks_retention_is_configured_and_a_zero_one_is_named(tmp_path: Path):
    (tmp_path / "exnode.toml").write_text(render_config("mca", "n", ""), encoding="utf-8")
    assert load_config(tmp_path, environ={}).checks.retention_days == 90
    assert load_config(tmp_path, environ={"EXNODE_CHECKS_RETENTION_DAYS": "30"}).checks.retention_days == 30
    with pytest.raises(ConfigError, match="EXNODE_CHECKS_RETENTION_DAYS.*checks.retention_days = 0"):
        load_config(tmp_path, environ={"EXNODE_CHECKS_RETENTION_DAYS": "0"})
