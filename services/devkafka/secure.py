"""The secure profile of the local broker: SASL_SSL with SCRAM-SHA-512 and ACLs.

:class:`SecureLocalBroker` is :class:`~services.devkafka.broker.LocalBroker` with
its hooks overridden; the plain profile is untouched. Everything secret is
generated on first ``up`` into the broker's own folder (mode 0700, files 0600),
never into the repository:

``<run_dir>/kafka-secure-<port>/``
    ``server.properties``   broker configuration (0600: holds the keystore and
                            internal passwords)
    ``secrets/admin.password``      SCRAM-SHA-512 password of ``User:admin``
    ``secrets/controller.password`` the broker's internal login to its controller
    ``secrets/keystore.password``   password of the PKCS12 key and trust stores
    ``tls/ca.pem``          the local CA certificate; give it to Python clients
                            (``CLUEBUS_KAFKA_SSL_CAFILE``)
    ``tls/broker.p12``      the broker's key and certificate chain (PKCS12)
    ``tls/truststore.p12``  the CA, for the broker's own client connections

The CA (``local_ca.py``, shared with the adapters' TLS) loses its private key as soon
as the broker certificate is signed: nobody can mint another certificate it vouches for. When the certificate
nears its end the whole TLS folder is simply made again on the next ``up``.

Listeners (see ``deploy/kafka/secure/README.md`` for the reasoning):

* ``CLIENT`` SASL_SSL on ``host:port``, SCRAM-SHA-512 only: every client, and
  the inter-broker listener (the broker authenticates to it as ``User:admin``).
* ``CONTROLLER`` SASL_PLAINTEXT on loopback ``host:port+1``, PLAIN only, one
  static user ``admin`` with a generated secret. SCRAM cannot be used there (its
  credentials live in the metadata log the controller serves), and a PLAINTEXT
  controller listener would make the broker-to-controller principal
  ``User:ANONYMOUS``, which would then have to be a super user.

The authorizer is KRaft's ``StandardAuthorizer`` with
``allow.everyone.if.no.acl.found=false`` and ``super.users=User:admin`` only.

:func:`add_profile_option` gives ``cluebus kafka up|down|status`` their
``--profile plain|secure`` option.

Over 400 lines for one job: the secure broker's secrets, certificates, listeners
and start-up belong together (each step depends on the files of the one before).
"""

from __future__ import annotations

import functools
import ipaddress
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from services.common.cli_errors import UserError
from services.devkafka import local_ca
from services.devkafka.broker import LauncherError, LocalBroker

ADMIN = "admin"
SCRAM_MECHANISM = "SCRAM-SHA-512"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def _write_secret(path: Path, value: str) -> None:
    """Create ``path`` readable by its owner only; never overwrite an existing secret."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")


def _read_secret(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise LauncherError(f"cannot read {path}: {exc.strerror}") from None


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LauncherError(f"{what} failed: {detail[0]}")


def _need(tool: str, package: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        raise LauncherError(f"{tool} not found: install {package} to run the secure profile")
    return exe


def _jaas_quote(value: str) -> str:
    if '"' in value or "\\" in value or ";" in value:
        raise LauncherError("generated secrets must not contain quotes, backslashes or semicolons")
    return f'"{value}"'


class SecureLocalBroker(LocalBroker):
    """A local KRaft broker that only speaks SASL_SSL (SCRAM-SHA-512) to clients, with ACLs."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # Its own folder: a plain broker's data on the same port is never reused
        # (it has no admin credential and no ACLs).
        self.home = Path(self.run_dir) / f"kafka-secure-{self.port}"

    # Paths ---------------------------------------------------------------------
    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    @property
    def admin_password_file(self) -> Path:
        return self.secrets_dir / f"{ADMIN}.password"

    @property
    def controller_password_file(self) -> Path:
        return self.secrets_dir / "controller.password"

    @property
    def store_password_file(self) -> Path:
        return self.secrets_dir / "keystore.password"

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def keystore_file(self) -> Path:
        return self.tls_dir / "broker.p12"

    @property
    def truststore_file(self) -> Path:
        return self.tls_dir / "truststore.p12"

    @property
    def _cert_file(self) -> Path:
        return self.tls_dir / "broker.pem"

    # Secrets and certificates -----------------------------------------------------
    def prepare(self) -> None:
        """Create the folder, the secrets and the TLS material that are missing (idempotent)."""
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        formatted = (self.data_dir / "meta.properties").exists()
        if formatted and not self.admin_password_file.exists():
            raise LauncherError(
                f"{self.data_dir} was formatted with an admin password that is gone "
                f"({self.admin_password_file} is missing); remove {self.home} to start afresh"
            )
        generated = (self.admin_password_file, self.controller_password_file, self.store_password_file)
        for path in generated:
            if not path.exists():
                _write_secret(path, secrets.token_urlsafe(32))
        if not self._tls_valid():
            self._make_tls()

    def _tls_valid(self) -> bool:
        files = (self.ca_file, self.keystore_file, self.truststore_file, self._cert_file)
        return all(f.exists() for f in files) and local_ca.valid_for(self._cert_file)

    def _subject_alt_names(self) -> tuple[str, ...]:
        names = {"DNS:localhost", "IP:127.0.0.1"}
        try:
            names.add(f"IP:{ipaddress.ip_address(self.host)}")
        except ValueError:
            names.add(f"DNS:{self.host}")
        return tuple(sorted(names))

    def _make_tls(self) -> None:
        """A fresh local CA and broker certificate (``local_ca.issue``), as PKCS12 stores."""
        keytool = _need("keytool", "a Java 17+ JDK/JRE (keytool)")
        openssl = _need("openssl", "openssl")
        store_pw = self.store_password_file
        self.tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryDirectory(prefix=".tls-", dir=self.home) as tmp_name:
            tmp = Path(tmp_name)
            try:
                local_ca.issue(tmp, [local_ca.Leaf("broker", "localhost", self._subject_alt_names())])
            except local_ca.CAError as exc:
                raise LauncherError(str(exc)) from None
            _run(
                [
                    openssl,
                    "pkcs12",
                    "-export",
                    "-in",
                    "broker.pem",
                    "-inkey",
                    "broker.key",
                    "-certfile",
                    "ca.pem",
                    "-name",
                    "broker",
                    "-out",
                    "broker.p12",
                    "-passout",
                    f"file:{store_pw}",
                ],
                "writing the broker keystore",
                cwd=tmp,
            )
            _run(
                [
                    keytool,
                    "-importcert",
                    "-noprompt",
                    "-alias",
                    "cluebus-local-ca",
                    "-file",
                    "ca.pem",
                    "-keystore",
                    "truststore.p12",
                    "-storetype",
                    "PKCS12",
                    "-storepass:file",
                    str(store_pw),
                ],
                "writing the broker truststore",
                cwd=tmp,
            )
            for name in ("broker.p12", "truststore.p12", "ca.pem", "broker.pem"):
                os.chmod(tmp / name, 0o600 if name.endswith(".p12") else 0o644)
                os.replace(tmp / name, self.tls_dir / name)
            # broker.key goes with the temporary folder; the CA key never left local_ca.issue().

    # LocalBroker hooks ----------------------------------------------------------------
    def properties(self) -> dict[str, str]:
        admin_pw = _jaas_quote(_read_secret(self.admin_password_file))
        controller_pw = _jaas_quote(_read_secret(self.controller_password_file))
        store_pw = _read_secret(self.store_password_file)
        props = super().properties()
        props.update(
            {
                "listeners": self.listeners_override
                or (f"CLIENT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"),
                "advertised.listeners": f"CLIENT://{self.host}:{self.port}",
                "listener.security.protocol.map": "CLIENT:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
                "inter.broker.listener.name": "CLIENT",
                "controller.listener.names": "CONTROLLER",
                # Clients: SCRAM-SHA-512 over TLS only.
                "sasl.enabled.mechanisms": SCRAM_MECHANISM,
                "listener.name.client.sasl.enabled.mechanisms": SCRAM_MECHANISM,
                "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
                "listener.name.client.scram-sha-512.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required "
                    f'username="{ADMIN}" password={admin_pw};'
                ),
                # Broker -> controller on loopback: PLAIN with one static user, admin.
                "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
                "sasl.mechanism.controller.protocol": "PLAIN",
                "listener.name.controller.plain.sasl.jaas.config": (
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    f'username="{ADMIN}" password={controller_pw} user_{ADMIN}={controller_pw};'
                ),
                # TLS: the broker's own key, the local CA; clients are not asked for certificates.
                "ssl.keystore.type": "PKCS12",
                "ssl.keystore.location": str(self.keystore_file),
                "ssl.keystore.password": store_pw,
                "ssl.key.password": store_pw,
                "ssl.truststore.type": "PKCS12",
                "ssl.truststore.location": str(self.truststore_file),
                "ssl.truststore.password": store_pw,
                "ssl.client.auth": "none",
                "ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
                "ssl.endpoint.identification.algorithm": "https",
                # Authorization: deny unless an ACL allows; admin is the only super user.
                "authorizer.class.name": AUTHORIZER,
                "allow.everyone.if.no.acl.found": "false",
                "super.users": f"User:{ADMIN}",
            }
        )
        props.update(self.extra_properties)
        return props

    def _write_properties(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{k}={v}\n" for k, v in self.properties().items())
        tmp = self.properties_file.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, self.properties_file)

    @property
    def _format_argfile(self) -> Path:
        return self.secrets_dir / "format.args"

    def _format_extra_args(self) -> list[str]:
        """The admin's SCRAM credential, in a 0600 argument file rather than on the command line."""
        password = _read_secret(self.admin_password_file)
        self._format_argfile.unlink(missing_ok=True)
        _write_secret(
            self._format_argfile,
            f"--add-scram\n{SCRAM_MECHANISM}=[name={ADMIN},password={password}]",
        )
        return [f"@{self._format_argfile}"]

    def _format(self, libs: Path) -> None:
        try:
            super()._format(libs)
        finally:
            self._format_argfile.unlink(missing_ok=True)

    def up(self, timeout: float = 90.0) -> str:
        if not self.running():
            self.prepare()
        return super().up(timeout=timeout)

    def client_settings(self, username: str = ADMIN, password_file: Path | None = None):  # type: ignore[no-untyped-def]
        """:class:`KafkaSettings` for a client of this broker (the admin by default)."""
        from services.common.settings import KafkaSettings

        if password_file is None:
            if username != ADMIN:
                raise ValueError(f"the password file of {username!r} is needed")
            password_file = self.admin_password_file
        return KafkaSettings(
            bootstrap=self.bootstrap,
            security_protocol="SASL_SSL",
            sasl_mechanism=SCRAM_MECHANISM,
            username=username,
            password_file=password_file,
            ssl_cafile=self.ca_file,
            bootstrap_timeout_ms=5_000,
        )

    def client_security(self) -> dict[str, object]:
        """The readiness check authenticates as admin over TLS, as every client must."""
        from services.common.kafka import security_kwargs

        if not self.admin_password_file.exists() or not self.ca_file.exists():
            raise LauncherError(f"{self.home} has no admin password or CA; run `up` first")
        return security_kwargs(self.client_settings())

    def _answers(self) -> bool:
        try:
            return super()._answers()
        except LauncherError:
            return False

    def client_env(self) -> dict[str, str]:
        """The environment a cluebus command needs to act as admin on this broker."""
        return {
            "CLUEBUS_KAFKA_BOOTSTRAP": self.bootstrap,
            "CLUEBUS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "CLUEBUS_KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
            "CLUEBUS_KAFKA_USERNAME": ADMIN,
            "CLUEBUS_KAFKA_PASSWORD_FILE": str(self.admin_password_file),
            "CLUEBUS_KAFKA_SSL_CAFILE": str(self.ca_file),
        }

    def describe(self) -> str:
        """Where a client finds what it needs (never the secrets themselves)."""
        exports = " ".join(f"{k}={v}" for k, v in self.client_env().items())
        return (
            f"  bootstrap:           {self.bootstrap} (SASL_SSL, {SCRAM_MECHANISM})\n"
            f"  CA file:             {self.ca_file}\n"
            f"  admin password file: {self.admin_password_file} (user {ADMIN}, mode 0600)\n"
            f"  act as admin:        export {exports}"
        )


# --- `cluebus kafka up|down|status --profile plain|secure` -----------------------------------
# add_profile_option(kafka_group) adds the option to the existing commands: ``plain`` (the
# default) runs them exactly as before; ``secure`` runs the same action on a
# SecureLocalBroker in ``<run-dir>/kafka-secure-<port>``.
PROFILES = ("plain", "secure")
ACTIONS = ("up", "down", "status")


class ProfileError(UserError):
    """A secure-profile broker action that failed (one line, like every cluebus error)."""


def secure_broker(port: int, run_dir: Path | None) -> SecureLocalBroker:
    kwargs: dict[str, Any] = {"port": port}
    if run_dir is not None:
        kwargs["run_dir"] = run_dir
    return SecureLocalBroker(**kwargs)


def run_secure(action: str, port: int, run_dir: Path | None) -> None:
    try:
        broker = secure_broker(port, run_dir)
        if action == "up":
            click.echo(broker.up())
            click.echo(broker.describe())
        elif action == "down":
            click.echo(broker.down())
        else:
            click.echo(broker.status())
    except (LauncherError, ValueError, OSError) as exc:
        raise ProfileError(str(exc)) from None


def _with_profile(original: Callable[..., Any], action: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def callback(*args: Any, profile: str = "plain", **kwargs: Any) -> Any:
        if profile == "plain":
            return original(*args, **kwargs)
        if kwargs.get("brokers") not in (None, 1):
            raise ProfileError("the secure profile runs one broker; --brokers is for the plain profile")
        return run_secure(action, kwargs["port"], kwargs.get("run_dir"))

    return callback


def add_profile_option(group: click.Group) -> click.Group:
    """Give ``up``, ``down`` and ``status`` of the ``kafka`` group a ``--profile`` option."""
    for action in ACTIONS:
        command = group.commands.get(action)
        if command is None or any(p.name == "profile" for p in command.params):
            continue
        command.params.append(
            click.Option(
                ["--profile"],
                type=click.Choice(PROFILES),
                default="plain",
                show_default=True,
                help="plain: no TLS, no authentication (demo); secure: SASL_SSL with SCRAM-SHA-512 and ACLs.",
            )
        )
        assert command.callback is not None
        command.callback = _with_profile(command.callback, action)
    return group
