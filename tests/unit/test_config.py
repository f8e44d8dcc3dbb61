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


def test_the_audit_commit_window_reaches_the_writer_and_an_out_of_range_one_is_named(tmp_path: Path):
    from node.bootstrap import audit_settings

    (tmp_path / "exnode.toml").write_text(render_config("mca", "n", ""), encoding="utf-8")
    assert audit_settings(load_config(tmp_path, environ={})).batch_window_s == 0.005
    config = load_config(tmp_path, environ={"EXNODE_AUDIT_BATCH_WINDOW_MS": "0"})
    assert audit_settings(config).batch_window_s == 0
    for bad in ("-1", "250"):
        with pytest.raises(ConfigError, match=f"EXNODE_AUDIT_BATCH_WINDOW_MS.*audit.batch_window_ms = {bad}"):
            load_config(tmp_path, environ={"EXNODE_AUDIT_BATCH_WINDOW_MS": bad})


def test_the_collector_policy_is_configured_applied_and_a_negative_threshold_is_named(tmp_path: Path):
    import gc

    from node.ops.startup import tune_gc

    (tmp_path / "exnode.toml").write_text("[server]\ngc_threshold0 = 30000\ngc_threshold2 = 50\n", encoding="utf-8")
    server = load_config(tmp_path, environ={}).server
    assert (server.gc_threshold0, server.gc_threshold1, server.gc_threshold2, server.gc_freeze) == (30000, 20, 50, True)
    before = gc.get_threshold()
    try:
        tune_gc(server)
        assert gc.get_threshold() == (30000, 20, 50) and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    with pytest.raises(ConfigError, match="EXNODE_SERVER_GC_THRESHOLD1.*gc_threshold1"):
        load_config(tmp_path, environ={"EXNODE_SERVER_GC_THRESHOLD1": "0"})
