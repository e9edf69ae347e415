from __future__ import annotations

import logging
import subprocess
import sys
import types
from pathlib import Path

import pytest

import callrouter
from callrouter import cli
from callrouter.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "example-org.yaml"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a child process, as an operator would run it."""
    code = "import sys; from callrouter.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected_start: str) -> None:
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(expected_start), result.stderr


def test_apply_reports_created_then_unchanged(store_url):
    first = run_cli("apply", str(EXAMPLE), "--store", store_url)
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout == f"applied {EXAMPLE}: 27 created, 1 updated, 0 unchanged\n"
    second = run_cli("apply", str(EXAMPLE), "--store", store_url)
    assert second.stdout == f"applied {EXAMPLE}: 0 created, 0 updated, 27 unchanged\n"


def test_apply_with_config_uses_its_store(tmp_path, capsys):
    config = tmp_path / "cr.yaml"
    config.write_text('store:\n  url: "sqlite:///data/cr.db"\n')
    assert cli.main(["apply", str(EXAMPLE), "--config", str(config)]) == 0
    assert capsys.readouterr().out.endswith(": 27 created, 1 updated, 0 unchanged\n")
    assert (tmp_path / "data" / "cr.db").exists()


def test_apply_without_store_uses_default_under_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["apply", str(EXAMPLE)]) == 0
    assert (tmp_path / "var" / "callrouter.db").exists()
    assert "27 created" in capsys.readouterr().out


def test_apply_names_the_file_as_given(tmp_path):
    (tmp_path / "orgs").mkdir()
    (tmp_path / "orgs" / "acme.yaml").write_text(EXAMPLE.read_text())
    result = run_cli("apply", "orgs/acme.yaml", "--store", "sqlite:///cr.db", cwd=tmp_path)
    assert result.stdout == "applied orgs/acme.yaml: 27 created, 1 updated, 0 unchanged\n"


def test_bad_org_file_is_one_line_and_exit_2(tmp_path):
    org = tmp_path / "org.yaml"
    org.write_text(EXAMPLE.read_text().replace('extension: "1002"', 'extension: "1"'))
    line = next(i for i, text in enumerate(org.read_text().splitlines(), 1) if 'extension: "1"' in text)
    result = run_cli("apply", str(org), "--store", f"sqlite:///{tmp_path / 'cr.db'}")
    assert_one_line_error(result, f"{org}:{line}: people[1].extension: must be 2 to 6 digits")


def test_missing_org_file(tmp_path):
    result = run_cli("apply", str(tmp_path / "nope.yaml"), "--store", f"sqlite:///{tmp_path / 'cr.db'}")
    assert_one_line_error(result, f"{tmp_path / 'nope.yaml'}:1: cannot read file")


def test_bad_config_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "cr.yaml"
    config.write_text("sip:\n  port: 99999\n")
    assert_one_line_error(run_cli("serve", "--config", str(config)), f"{config}:2: sip.port: must be between 1 and 65535")
    assert_one_line_error(run_cli("apply", str(EXAMPLE), "--config", str(config)), f"{config}:2: sip.port:")


def test_unreachable_store_is_one_line_and_exit_2():
    result = run_cli("apply", str(EXAMPLE), "--store", "postgresql://u:hunter2@127.0.0.1:1/none")
    assert_one_line_error(result, "cannot open store postgresql+psycopg://u:***@127.0.0.1:1/none")


def test_config_and_store_are_exclusive():
    result = run_cli("apply", str(EXAMPLE), "--config", "a.yaml", "--store", "sqlite:///x.db")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


def test_serve_loads_settings_configures_logging_and_runs_the_app(tmp_path, monkeypatch):
    config = tmp_path / "cr.yaml"
    config.write_text("log:\n  level: debug\napi:\n  port: 9123\n")
    seen = []
    fake = types.SimpleNamespace(run=seen.append)
    monkeypatch.setitem(sys.modules, "callrouter.app", fake)
    monkeypatch.setattr(callrouter, "app", fake, raising=False)
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", root.level)  # restored after the test
    assert cli.main(["serve", "--config", str(config)]) == 0
    [settings] = seen
    assert settings.api.port == 9123
    assert settings.model_dump() == load_settings(config).model_dump()
    assert root.level == logging.DEBUG


def test_serve_awaits_an_async_run(tmp_path, monkeypatch):
    config = tmp_path / "cr.yaml"
    config.write_text("")
    done = []

    async def run(settings):
        done.append(settings.sip.port)

    fake = types.SimpleNamespace(run=run)
    monkeypatch.setitem(sys.modules, "callrouter.app", fake)
    monkeypatch.setattr(callrouter, "app", fake, raising=False)
    monkeypatch.setattr(logging.getLogger(), "level", logging.getLogger().level)
    assert cli.main(["serve", "--config", str(config)]) == 0
    assert done == [5060]


def test_serve_requires_config():
    with pytest.raises(SystemExit) as info:
        cli.main(["serve"])
    assert info.value.code == 2
