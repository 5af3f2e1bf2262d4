"""Where principals' passwords come from, and what is refused, without a broker."""

import os
import stat

import pytest

from services.acl.users import (
    REPO_ROOT,
    SecretError,
    SecretSource,
    env_name,
    resolve_passwords,
)
from tests.small_rules import small_rules_text

GOOD = "s3cret-" + "x" * 20


def secret_file(folder, principal, value=GOOD, mode=0o600):
    path = folder / f"{principal}.password"
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


def test_env_names():
    assert env_name("dept-civil_affairs") == "CLUEBUS_ACL_PASSWORD_DEPT_CIVIL_AFFAIRS"
    assert env_name("router") == "CLUEBUS_ACL_PASSWORD_ROUTER"


def test_file_wins_over_environment(tmp_path):
    secret_file(tmp_path, "router")
    source = SecretSource(tmp_path, environ={env_name("router"): "y" * 30})
    assert source.password("router") == GOOD


def test_environment_is_the_fallback(tmp_path):
    source = SecretSource(tmp_path, environ={env_name("dept-police"): "y" * 30})
    assert source.password("dept-police") == "y" * 30
    assert source.password("tracker") is None


def test_secrets_dir_from_environment(tmp_path):
    secret_file(tmp_path, "tracker")
    source = SecretSource(environ={"CLUEBUS_ACL_SECRETS_DIR": str(tmp_path)})
    assert source.password("tracker") == GOOD


def test_file_readable_by_others_is_refused(tmp_path):
    secret_file(tmp_path, "router", mode=0o644)
    with pytest.raises(SecretError, match="readable by others") as info:
        SecretSource(tmp_path, environ={}).password("router")
    assert GOOD not in str(info.value)


def test_short_passwords_are_refused(tmp_path):
    secret_file(tmp_path, "router", value="short")
    with pytest.raises(SecretError, match="shorter than"):
        SecretSource(tmp_path, environ={}).password("router")
    with pytest.raises(SecretError, match="shorter than"):
        SecretSource(environ={env_name("tracker"): "short"}).password("tracker")


def test_secrets_folder_inside_the_repository_is_refused():
    with pytest.raises(SecretError, match="inside the repository"):
        SecretSource(REPO_ROOT / "deploy", environ={})
    SecretSource(REPO_ROOT / ".run" / "secrets", environ={})  # git-ignored: allowed


def test_generate_missing_writes_owner_only_files(tmp_path):
    folder = tmp_path / "secrets"
    secret_file(tmp_path, "unused")
    source = SecretSource(folder, environ={})
    found, result = resolve_passwords(["router", "dept-police"], source, generate_missing=True)
    assert result.generated == ["dept-police", "router"]
    assert set(found) == {"router", "dept-police"}
    assert found["router"] != found["dept-police"]
    for principal in found:
        mode = stat.S_IMODE(os.stat(folder / f"{principal}.password").st_mode)
        assert mode == 0o600
    # A second run reuses the files.
    again, result2 = resolve_passwords(["router", "dept-police"], source, generate_missing=True)
    assert again == found and result2.generated == []


def test_missing_secrets_are_listed(tmp_path):
    secret_file(tmp_path, "router")
    found, result = resolve_passwords(["router", "tracker"], SecretSource(tmp_path, environ={}))
    assert list(found) == ["router"]
    assert result.missing == ["tracker"]


def test_admin_is_not_managed_here(tmp_path):
    with pytest.raises(SecretError, match="admin"):
        resolve_passwords(["admin"], SecretSource(tmp_path, environ={}))


def test_users_command_changes_nothing_when_a_secret_is_missing(tmp_path):
    from click.testing import CliRunner

    from services.acl.cli import acl

    rules = tmp_path / "rules.toml"
    rules.write_text(small_rules_text(["police"]))
    secret_file(tmp_path, "router")
    # No broker is contacted: the command stops before connecting.
    args = ["users", "--rules", str(rules), "--secrets-dir", str(tmp_path)]
    result = CliRunner().invoke(acl, args, env={"CLUEBUS_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert result.exit_code == 1
    assert "no secret for adapter-hospital" in result.output and "nothing changed" in result.output
    assert GOOD not in result.output
    unknown = CliRunner().invoke(acl, ["users", "--rules", str(rules), "--principal", "dept-court"])
    assert unknown.exit_code == 1 and "not principals of the bus: dept-court" in unknown.output
