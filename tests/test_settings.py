import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.settings import ConfigError, load_settings

BASE = {"STAGE": "dev", "ISSUER_URL": "https://auth.example", "KMS_KEY_ID": "alias/k", "AWS_REGION": "eu-west-1"}


def test_defaults_for_local_stage():
    settings = load_settings({"AWS_DEFAULT_REGION": "us-east-1"})
    assert settings.stage == "local"
    assert settings.issuer == "http://127.0.0.1:8000"
    assert settings.api_audience == "http://127.0.0.1:8000/v1"
    assert settings.access_token_seconds == 900
    assert settings.code_seconds == 60
    assert not settings.secure_cookies


def test_dev_stage_settings():
    settings = load_settings(BASE)
    assert settings.table_name == "clipron-oauth-dev"
    assert settings.secure_cookies
    assert settings.url("/token") == "https://auth.example/token"


@pytest.mark.parametrize(
    "change, named",
    [
        ({"STAGE": "qa"}, "STAGE"),
        ({"ISSUER_URL": ""}, "ISSUER_URL"),
        ({"ISSUER_URL": "http://auth.example"}, "ISSUER_URL"),
        ({"ISSUER_URL": "https://auth.example/"}, "ISSUER_URL"),
        ({"ISSUER_URL": "https://auth.example?x=1"}, "ISSUER_URL"),
        ({"ISSUER_URL": "auth.example"}, "ISSUER_URL"),
        ({"KMS_KEY_ID": ""}, "KMS_KEY_ID"),
        ({"AWS_REGION": ""}, "AWS_REGION"),
        ({"ACCESS_TOKEN_SECONDS": "fifteen"}, "ACCESS_TOKEN_SECONDS"),
        ({"ACCESS_TOKEN_SECONDS": "5"}, "ACCESS_TOKEN_SECONDS"),
        ({"REFRESH_GRACE_SECONDS": "600"}, "REFRESH_GRACE_SECONDS"),
        ({"DDB_READ_TIMEOUT_SECONDS": "60"}, "DDB_READ_TIMEOUT_SECONDS"),
        ({"REFRESH_IDLE_SECONDS": "9999999", "REFRESH_ABSOLUTE_SECONDS": "100"}, "REFRESH_IDLE_SECONDS"),
    ],
)
def test_bad_setting_names_the_variable(change, named):
    with pytest.raises(ConfigError) as raised:
        load_settings({**BASE, **change})
    assert named in str(raised.value)
    assert "\n" not in str(raised.value)


def test_app_fails_at_start_naming_the_setting():
    env = {"PATH": "/usr/bin:/bin", "STAGE": "prod", "ISSUER_URL": "ftp://nope", "AWS_REGION": "us-east-1"}
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", "import app"], cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "ConfigError: ISSUER_URL must be an absolute http(s) URL" in result.stderr
