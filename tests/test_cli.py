"""Operator commands: --help everywhere, idempotent provision, one-line errors with a non-zero exit."""

import io
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib import cli

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["provision", "create-user", "create-client", "issue-registration-token", "rotate-keys", "verify-client"]


def test_the_module_runs_as_a_command():
    args = [sys.executable, "-m", "chalicelib.cli", "--help"]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0
    assert "usage:" in result.stdout


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([*([command] if command else []), "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert "usage:" in out
    if command:
        assert command in out


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_provision_twice_changes_nothing_the_second_time(aws, capsys):
    code, out, _ = run(capsys, "provision")
    assert code == 0
    assert out.startswith("nothing to change")


def test_create_user_and_client(aws, capsys):
    code, out, _ = run(capsys, "create-user", "--email", "Ada@Example.com", "--password", "correct horse")
    assert code == 0 and "<ada@example.com>" in out
    code, out, _ = run(capsys, "create-client", "--name", "My App", "--redirect-uri", "https://app.example/cb")
    assert code == 0
    assert '"client_secret"' in out and '"token_endpoint_auth_method": "client_secret_basic"' in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["create-user", "--email", "not-an-email", "--password", "long enough"], "not an email address"),
        (["create-user", "--email", "a@b.example", "--password", "short"], "8 to 256 characters"),
        (["create-client", "--name", "X", "--redirect-uri", "http://evil.example/cb"], "must use https"),
        (["create-client", "--name", "X", "--redirect-uri", "https://a.example/cb#frag"], "fragment"),
        (["create-client", "--name", "X"], "at least one redirect URI"),
        (["create-client", "--name", "X", "--redirect-uri", "https://a.example/cb", "--client-id",
          "https://agent.example/client.json"], "Client ID Metadata Document"),
        (["create-client", "--name", "X", "--redirect-uri", "https://a.example/cb", "--scope", "admin"],
         "unknown scope"),
    ],
)
def test_bad_input_is_one_clear_line(aws, capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_duplicate_user_is_refused(aws, capsys):
    assert run(capsys, "create-user", "--email", "a@b.example", "--password", "long enough")[0] == 0
    code, _, err = run(capsys, "create-user", "--email", "A@B.example", "--password", "long enough")
    assert code == 2 and "already exists" in err


@pytest.mark.parametrize("argv", [["issue-registration-token", "--days", "0"], ["provision", "--stage", "qa"]])
def test_argument_errors_exit_non_zero(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err.splitlines()[-1]


def test_bad_configuration_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("ISSUER_URL", "not a url")
    code, _, err = run(capsys, "rotate-keys")
    assert code == 2
    assert err == "error: ISSUER_URL must be an absolute http(s) URL, got 'not a url'\n"


def test_rotate_keys(aws, capsys):
    code, out, _ = run(capsys, "rotate-keys")
    assert code == 0 and '"current"' in out and '"retired"' in out


def test_verify_client_marks_and_unmarks_an_app(aws, capsys):
    from chalicelib import clock
    from chalicelib.oauth import registration

    app = registration.build_client({"client_name": "Self Made", "redirect_uris": ["https://s.example/cb"]}, None,
                                    clock.now()).client
    aws.store.create_client(app)
    code, out, _ = run(capsys, "verify-client", "--client-id", app.client_id)
    assert code == 0 and "now verified" in out
    assert aws.store.get_client(app.client_id).verified
    code, out, _ = run(capsys, "verify-client", "--client-id", app.client_id, "--withdraw")
    assert code == 0 and not aws.store.get_client(app.client_id).verified
    code, _, err = run(capsys, "verify-client", "--client-id", "app_nope")
    assert code == 2 and err.startswith("error: no client")


def test_create_user_without_a_terminal_reads_the_password_from_stdin(aws, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery\n"))
    code, out, err = run(capsys, "create-user", "--email", "piped@example.com")
    assert (code, err) == (0, "") and "<piped@example.com>" in out


def test_create_user_without_a_terminal_or_a_password_says_how_to_give_one():
    result = subprocess.run([sys.executable, "-m", "chalicelib.cli", "create-user", "--email", "a@b.example"],
                            cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    assert result.returncode == 2
    assert result.stderr == "error: no password: pass --password, or the password as the first line of stdin\n"
