"""Operator commands: `python -m chalicelib.cli COMMAND --help`.

Errors are one line on stderr and exit status 2; nothing secret is printed except a secret being
issued (shown once, on stdout).
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import audit, clock, wiring
from chalicelib.admin import Admin, AdminError
from chalicelib.crypto.envelope import EnvelopeError
from chalicelib.crypto.secrets import digest, new_token
from chalicelib.oauth import accounts, registration
from chalicelib.oauth.cimd import is_metadata_url
from chalicelib.oauth.errors import OAuthError
from chalicelib.oauth.grants import TOKEN_EXCHANGE
from chalicelib.oauth.resource_servers import builtin_api, new_resource_server, registrable_scopes
from chalicelib.oauth.scopes import CATALOGUE
from chalicelib.records import (
    AlreadyExists,
    ClientRecord,
    ClientSecret,
    RegistrationTokenRecord,
    StoreUnavailable,
    UserRecord,
)
from chalicelib.settings import STAGES, ConfigError, load_settings

CONFIG_FILE = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"


class CliError(Exception):
    """A clear, one-line failure of an operator command."""


def stage_environment(stage: str, environ: dict[str, str], config_file: Path = CONFIG_FILE) -> dict[str, str]:
    """The stage's environment_variables from .chalice/config.json, overridden by the real environment."""
    values: dict[str, str] = {}
    if config_file.exists():
        config = json.loads(config_file.read_text())
        values.update(config.get("environment_variables", {}))
        values.update(config.get("stages", {}).get(stage, {}).get("environment_variables", {}))
    values.update(environ)
    values["STAGE"] = stage
    return values


def _services(args: argparse.Namespace) -> wiring.Services:
    chalice_dir = getattr(args, "chalice_dir", None)
    config_file = chalice_dir / "config.json" if chalice_dir else CONFIG_FILE
    settings = load_settings(stage_environment(args.stage, dict(os.environ), config_file))
    services = wiring.build(settings)
    wiring.serve(services)  # the CLI's process serves one stage
    return services


def cmd_provision(args: argparse.Namespace) -> None:
    from chalicelib.provision import provision, provision_stage

    services = _services(args)
    if args.stage == "local":
        changes = provision(services)
    else:
        if not (args.chalice_dir / "config.json").exists():
            raise CliError(f"no config.json in {args.chalice_dir}")
        changes = provision_stage(services, args.chalice_dir)
    print("\n".join(changes) if changes else "nothing to change: tables, TTL, KMS key and signing keys exist")


def _password(args: argparse.Namespace) -> str:
    """--password, else stdin's first line when asked or when there is no terminal to prompt on, else a prompt."""
    if args.password is not None:
        return args.password
    if args.password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("no password: pass --password, or the password as the first line of stdin")
        return password
    return getpass.getpass("Password: ")


def cmd_create_user(args: argparse.Namespace) -> None:
    password = _password(args)
    services = _services(args)
    user = accounts.create_user(services.store, args.email, password, clock.now(), name=args.name or "",
                                email_verified=args.email_verified)
    print(f"created user {user.user_id} <{user.email}>")


def cmd_create_client(args: argparse.Namespace) -> None:
    auth_method, grant_types = registration.APP_TYPES[args.type]
    metadata: dict[str, Any] = {
        "client_name": args.name,
        "redirect_uris": args.redirect_uri or [],
        "token_endpoint_auth_method": args.auth_method or auth_method,
        "grant_types": grant_types,
    }
    if args.scope:
        metadata["scope"] = args.scope
    if args.type == "machine":
        metadata["response_types"] = []
    services = _services(args)
    registered = registration.build_client(metadata, args.owner, clock.now(), verified=True,  # the operator vouches
                                           extra_scopes=registrable_scopes(services.store))
    client, secret = registered.client, registered.client_secret
    if args.resource_server:
        if not client.confidential:
            raise CliError("a resource server must be a confidential client (it authenticates to introspect)")
        client.resource_server = True
    if args.token_exchange:
        if not client.confidential:
            raise CliError("token exchange needs a confidential client (it authenticates as the actor)")
        client.grant_types = [*client.grant_types, TOKEN_EXCHANGE]  # a copy: never the shared APP_TYPES list
    if args.client_id:
        if is_metadata_url(args.client_id):  # such an id names a Client ID Metadata Document, never a registration
            raise CliError("a client id that is an https URL is taken as a Client ID Metadata Document; choose another")
        client.client_id = args.client_id
    if args.client_secret and secret:
        secret = args.client_secret
        client.secrets = [ClientSecret(digest(secret))]
    try:
        services.store.create_client(client)
    except AlreadyExists:
        raise CliError(f"a client with id {client.client_id} already exists") from None
    audit.emit("client.created", client_id=client.client_id, owner_id=args.owner, via="operator")
    result = {**registration.client_metadata(client), **({"client_secret": secret} if secret else {})}
    print(json.dumps(result, indent=2))


def cmd_verify_client(args: argparse.Namespace) -> None:
    """Vouch for an app (or withdraw it): the consent page and Connected apps stop (start) marking it
    "not verified", and its authorization errors may be redirected before the user signs in. Warm Lambda
    instances see the change within CLIENT_CACHE_SECONDS."""
    services = _services(args)
    verified = not args.withdraw

    def mark(client: ClientRecord) -> None:
        client.verified = verified

    if services.store.update_client(args.client_id, mark) is None:
        raise CliError(f"no client with id {args.client_id}")
    audit.emit("client.updated", client_id=args.client_id, via="operator")
    print(f"client {args.client_id} is {'now verified' if verified else 'no longer verified'} by Clipron")


def _scope_descriptions(values: list[str]) -> dict[str, str]:
    """`scope` or `scope=description` (the catalogue's wording by default)."""
    scopes: dict[str, str] = {}
    for value in values:
        scope, _, description = value.partition("=")
        description = description.strip() or CATALOGUE.get(scope, "")
        if not description:
            raise CliError(f"the scope {scope} is not in the catalogue: give it a description (SCOPE=DESCRIPTION)")
        scopes[scope] = description
    return scopes


def cmd_create_resource_server(args: argparse.Namespace) -> None:
    services = _services(args)
    if args.identifier == services.settings.api_audience:
        raise CliError("the Clipron API is built in")
    if args.client_id:
        client = services.store.get_client(args.client_id)
        if client is None or not client.confidential:
            raise CliError(f"no confidential client with id {args.client_id} (create it first: create-client)")
    lifetime = args.access_token_seconds or services.settings.access_token_seconds
    try:
        server = new_resource_server(args.identifier, args.name, _scope_descriptions(args.scope), lifetime,
                                     args.client_id, clock.now())
    except ValueError as error:
        raise CliError(str(error)) from None
    try:
        services.store.create_resource_server(server)
    except AlreadyExists:
        raise CliError(f"a resource server {args.identifier} already exists") from None
    print(json.dumps(dataclasses.asdict(server), indent=2))


def cmd_list_resource_servers(args: argparse.Namespace) -> None:
    services = _services(args)
    servers = [builtin_api(services.settings), *services.store.list_resource_servers()]
    print(json.dumps([dataclasses.asdict(server) for server in servers], indent=2))


def cmd_delete_resource_server(args: argparse.Namespace) -> None:
    services = _services(args)
    if args.identifier == services.settings.api_audience:
        raise CliError("the Clipron API is built in and cannot be deleted")
    if not services.store.delete_resource_server(args.identifier):
        raise CliError(f"no resource server {args.identifier}")
    print(f"deleted resource server {args.identifier}; tokens already issued for it stay valid until they expire")


def cmd_issue_registration_token(args: argparse.Namespace) -> None:
    services = _services(args)
    token = args.token or new_token()
    now = clock.now()
    services.store.put_registration_token(
        RegistrationTokenRecord(digest(token), now, now + args.days * 86400, args.description)
    )
    print(token)


def cmd_rotate_keys(args: argparse.Namespace) -> None:
    result = _services(args).keyring.rotate()
    audit.emit("keys.rotated", **result, via="operator")
    print(json.dumps(result, indent=2))


# --- the operator's tools (chalicelib/admin.py) -------------------------------------------------


def _admin(args: argparse.Namespace) -> Admin:
    services = _services(args)
    return Admin(services.store, services.clients)


def _user_line(user: UserRecord) -> str:
    return f"{user.user_id}  {user.email}{'  DISABLED' if user.disabled else ''}"


def _client_line(client: ClientRecord) -> str:
    flags = "".join(("  DISABLED" if client.disabled else "", "  resource-server" if client.resource_server else ""))
    return f"{client.client_id}  {client.app_type}  {client.name!r}  owner={client.owner_id or '-'}{flags}"


def cmd_list_users(args: argparse.Namespace) -> None:
    print("\n".join(_user_line(user) for user in _admin(args).users()) or "no users")


def cmd_show_user(args: argparse.Namespace) -> None:
    admin = _admin(args)
    user = admin.user(args.user)
    apps = admin.store.list_owned_apps(user.user_id)
    consents = admin.store.list_consents(user.user_id)
    print(json.dumps({"user_id": user.user_id, "email": user.email, "created_at": user.created_at,
                      "disabled": user.disabled, "owned_apps": [app.client_id for app in apps],
                      "authorised_apps": {c.client_id: c.scopes for c in consents}}, indent=2))


def _record_command(line: Callable[[Any], str], attribute: str, action: Callable[[Admin, str], Any], done: str
                    ) -> Callable[[argparse.Namespace], None]:
    """A command that changes one user (line=_user_line, attribute "user") or client and prints it."""
    def run(args: argparse.Namespace) -> None:
        print(f"{done}: {line(action(_admin(args), getattr(args, attribute)))}")
    return run


def cmd_reset_password(args: argparse.Namespace) -> None:
    password = _password(args)
    user = _admin(args).reset_password(args.user, password)
    print(f"password reset, grants and sessions ended: {_user_line(user)}")


def cmd_delete_user(args: argparse.Namespace) -> None:
    user, apps = _admin(args).delete_user(args.user)
    print(f"deleted user {user.user_id} <{user.email}>; its grants and sessions stopped")
    if apps:
        print(f"it still owns these apps (delete them with delete-client): {' '.join(apps)}")


def cmd_list_clients(args: argparse.Namespace) -> None:
    print("\n".join(_client_line(client) for client in _admin(args).clients()) or "no clients")


def cmd_show_client(args: argparse.Namespace) -> None:
    client = _admin(args).client(args.client_id)
    print(json.dumps({**registration.client_metadata(client), "app_type": client.app_type,
                      "owner_id": client.owner_id, "disabled": client.disabled,
                      "resource_server": client.resource_server, "created_at": client.created_at}, indent=2))


def cmd_clear_throttle(args: argparse.Namespace) -> None:
    cleared = _admin(args).clear_throttles(args.email, args.source, args.client_id, args.all_sources)
    print("\n".join(f"{key.split(':')[0]}: {count} item(s) deleted" for key, count in cleared.items()))


def cmd_list_registration_tokens(args: argparse.Namespace) -> None:
    lines = [f"{t.token_digest[:16]}  created={t.created_at}  expires={t.expires_at}  {t.description!r}"
             for t in _admin(args).registration_tokens()]
    print("\n".join(lines) or "no registration tokens")


def cmd_revoke_registration_token(args: argparse.Namespace) -> None:
    token = _admin(args).revoke_registration_token(args.digest)
    print(f"revoked registration token {token.token_digest[:16]} {token.description!r}")


def _days(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 365:
        raise argparse.ArgumentTypeError(f"must be a whole number of days from 1 to 365, got {value!r}")
    return int(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.cli", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], None], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--stage", choices=STAGES, default="local", help="stage whose configuration to use")
        sub.set_defaults(handler=handler)
        return sub

    provision = command("provision", cmd_provision,
                        "create the tables (TTL on), the KMS key and the signing keys if absent; for dev/prod, "
                        "record their names and ARNs in the stage's config and IAM policy files")
    provision.add_argument("--chalice-dir", type=Path, default=CONFIG_FILE.parent,
                           help="the .chalice directory to read and update (default: the project's)")
    user = command("create-user", cmd_create_user, "create a Clipron account")
    user.add_argument("--email", required=True)
    user.add_argument("--name", help="the name OpenID Connect apps see (UserInfo `name`)")
    user.add_argument("--email-verified", action="store_true",
                      help="you checked the address: apps see email_verified=true")
    _password_arguments(user)
    client = command("create-client", cmd_create_client, "register an OAuth application; prints its secret once")
    client.add_argument("--name", required=True)
    client.add_argument("--type", choices=sorted(registration.APP_TYPES), default="web",
                        help="web: confidential, code flow; native: public, PKCE; machine: client_credentials")
    client.add_argument("--redirect-uri", action="append", help="repeat for several")
    client.add_argument("--scope", help="space-separated allowed scopes (default: every scope)")
    client.add_argument("--auth-method", choices=["client_secret_basic", "client_secret_post", "none"])
    client.add_argument("--owner", help="user id of the developer who owns the app")
    client.add_argument("--resource-server", action="store_true",
                        help="may introspect every client's tokens (POST /introspect); otherwise only its own")
    client.add_argument("--token-exchange", action="store_true",
                        help="may exchange tokens for its resource server's audience for other resources (RFC 8693)")
    client.add_argument("--client-id", help=argparse.SUPPRESS)
    client.add_argument("--client-secret", help=argparse.SUPPRESS)
    verify = command("verify-client", cmd_verify_client,
                     "mark an application as verified by Clipron (or withdraw it with --withdraw)")
    verify.add_argument("--client-id", required=True)
    verify.add_argument("--withdraw", action="store_true", help="mark it as not verified again")
    server = command("create-resource-server", cmd_create_resource_server,
                     "register a protected resource (RFC 8707): tokens can then name it with `resource`")
    server.add_argument("--identifier", required=True, help="its absolute URI, no query or fragment (the token's aud)")
    server.add_argument("--name", required=True, help="shown on the consent page")
    server.add_argument("--scope", action="append", required=True, metavar="SCOPE[=DESCRIPTION]",
                        help="a scope it accepts, with its consent-page wording (default: the catalogue's); repeat")
    server.add_argument("--access-token-seconds", type=int, help="access-token lifetime (default ACCESS_TOKEN_SECONDS)")
    server.add_argument("--client-id", help="the confidential client acting for it (introspection, token exchange)")
    command("list-resource-servers", cmd_list_resource_servers, "list the resource servers, the built-in API first")
    delete = command("delete-resource-server", cmd_delete_resource_server, "delete a resource server")
    delete.add_argument("--identifier", required=True)
    token = command("issue-registration-token", cmd_issue_registration_token,
                    "issue an initial access token for POST /register; prints it once")
    token.add_argument("--days", type=_days, default=30, help="lifetime in days, 1 to 365 (default 30)")
    token.add_argument("--description", default="")
    token.add_argument("--token", help=argparse.SUPPRESS)
    command("rotate-keys", cmd_rotate_keys, "promote the next signing key, retire the current one, add a new next")
    _operator_commands(command)
    return parser


def _password_arguments(parser: argparse.ArgumentParser) -> None:
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password", help="the password (prefer --password-stdin or the prompt)")
    secret.add_argument("--password-stdin", action="store_true",
                        help="read the password from stdin (the default without a terminal)")


_Command = Callable[[str, Callable[[argparse.Namespace], None], str], argparse.ArgumentParser]


def _record_commands(command: _Command, noun: str, line: Callable[[Any], str],
                     set_disabled: Callable[[Admin, str, bool], Any], rows: list[tuple[str, Any, str]],
                     disable_help: str) -> dict[str, argparse.ArgumentParser]:
    """show-NOUN (rows[0]), disable-NOUN, enable-NOUN, then the other rows, each taking the record's id as
    --user/--client-id. A row's handler is a command function, or (Admin method, what to print) for a
    one-write change of the record."""
    flag = "--client-id" if noun == "client" else "--user"
    attribute = flag[2:].replace("-", "_")

    def change(action: Callable[[Admin, str], Any], done: str) -> Callable[[argparse.Namespace], None]:
        return _record_command(line, attribute, action, done)

    switches = [
        (f"disable-{noun}", change(lambda a, key: set_disabled(a, key, True), "disabled"), disable_help),
        (f"enable-{noun}", change(lambda a, key: set_disabled(a, key, False), "enabled"), f"undo disable-{noun}"),
    ]
    made = {}
    for name, handler, help_text in [rows[0], *switches, *rows[1:]]:
        made[name] = command(name, handler if callable(handler) else change(*handler), help_text)
        made[name].add_argument(flag, required=True, help="user id or email" if noun == "user" else None)
    return made


def _operator_commands(command: _Command) -> None:
    """Users, clients and registration tokens; every withdrawal is one write and takes effect at once."""
    command("list-users", cmd_list_users, "list every user (a Scan)")
    users = _record_commands(command, "user", _user_line, Admin.set_user_disabled, [
        ("show-user", cmd_show_user, "show a user, the apps it owns and the apps it authorised"),
        ("revoke-user-grants", (Admin.revoke_user_grants, "grants and sessions ended"),
         "end every authorization, refresh token and session of the user, for every app"),
        ("reset-password", cmd_reset_password, "set a new password; ends the user's grants and sessions"),
        ("delete-user", cmd_delete_user, "delete the account; its grants and sessions stop"),
    ], "refuse the user at sign-in, on every page, at refresh and introspection (reversible)")
    _password_arguments(users["reset-password"])
    command("list-clients", cmd_list_clients, "list every client (a Scan)")
    _record_commands(command, "client", _client_line, Admin.set_client_disabled, [
        ("show-client", cmd_show_client, "show a client's registration"),
        ("revoke-client-grants", (Admin.revoke_client_grants, "grants ended"),
         "end every authorization and refresh token of the client, for every user"),
        ("delete-client", (Admin.delete_client, "deleted"), "delete the client; its grants and tokens stop"),
    ], "refuse the client everywhere and make its tokens inactive (reversible)")
    throttle = command("clear-throttle", cmd_clear_throttle,
                       "lift sign-in and client-authentication throttles (counters and backoff blocks)")
    throttle.add_argument("--email", help="the account: its per-account limit (with --source: that pair too)")
    throttle.add_argument("--source", help="a source IP address: its own limits, or the pair with --email/--client-id")
    throttle.add_argument("--client-id", help="with --source: that client's authentication failures from it")
    throttle.add_argument("--global", dest="all_sources", action="store_true", help="the global sign-in ceiling")
    command("list-registration-tokens", cmd_list_registration_tokens,
            "list the initial access tokens for POST /register (digest prefix, dates, description)")
    revoke = command("revoke-registration-token", cmd_revoke_registration_token,
                     "delete an initial access token, named by its digest prefix as listed")
    revoke.add_argument("--digest", required=True, help="at least 8 characters of the digest, as listed")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        args.handler(args)
    except (CliError, ConfigError, AdminError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OAuthError as error:
        print(f"error: {error.description or error.error}", file=sys.stderr)
        return 2
    except (StoreUnavailable, EnvelopeError, BotoCoreError, ClientError) as error:
        print(f"error: AWS is unavailable or refused: {error} (run provision first?)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
