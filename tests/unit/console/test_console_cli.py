"""`cluebus console user add|disable|passwd|list` and the HTTPS-only start, through the CLI."""

from __future__ import annotations

from click.testing import CliRunner

from services.cli import main
from tests.conftest import REPO


def run(tmp_path, *args, stdin=None):  # type: ignore[no-untyped-def]
    env = {"CLUEBUS_STATE_DIR": str(tmp_path), "CLUEBUS_RULES_FILE": str(REPO / "routing_rules.toml")}
    return CliRunner().invoke(main, ["console", *args], input=stdin, env=env)


def test_users_are_managed_without_a_password_ever_on_screen_or_in_the_file(tmp_path):
    added = run(
        tmp_path, "user", "add", "officer.1", "--department", "police", "--password-stdin", stdin="s3cret-enough-pw\n"
    )
    assert added.exit_code == 0 and "added officer.1 (police, staff)" in added.output
    assert "s3cret-enough-pw" not in (tmp_path / "console-users.toml").read_text()
    prompted = run(tmp_path, "user", "add", "chief.1", "--department", "police", "--role", "supervisor",
                   stdin="another-long-pw\nanother-long-pw\n")  # fmt: skip
    assert prompted.exit_code == 0 and "another-long-pw" not in prompted.output
    assert run(tmp_path, "user", "disable", "officer.1").exit_code == 0
    listing = run(tmp_path, "user", "list").output
    assert "officer.1" in listing and "disabled" in listing and "scrypt" not in listing
    assert run(tmp_path, "user", "passwd", "officer.1", "--password-stdin", stdin="a-new-long-pw\n").exit_code == 0
    assert "disabled" not in run(tmp_path, "user", "list").output.split("officer.1")[1].splitlines()[0]


def test_bad_requests_are_one_line_errors(tmp_path):
    unknown = run(
        tmp_path, "user", "add", "x.1", "--department", "polize", "--password-stdin", stdin="long-enough-pw\n"
    )
    assert unknown.exit_code == 1 and "unknown department 'polize'" in unknown.output
    short = run(tmp_path, "user", "add", "x.1", "--department", "police", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1 and "at least 12" in short.output
    assert "no user nobody" in run(tmp_path, "user", "disable", "nobody").output


def test_the_console_serves_https_only(tmp_path):
    refused = run(tmp_path, "--port", "0")
    assert refused.exit_code == 1 and "serves HTTPS only" in refused.output
