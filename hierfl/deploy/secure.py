"""TLS certificates, SuperNode keys and node registration for a secured SuperLink.

Flower secures a deployment in two independent layers: TLS (the SuperLink presents a certificate
that SuperNodes and the ``flwr`` CLI verify against a CA) and SuperNode authentication (the
SuperLink, started with ``--enable-supernode-auth``, only accepts nodes whose ECDSA public key
was registered beforehand with ``flwr supernode register``). The helpers here produce the files
both layers need with the ``cryptography`` package, which Flower itself depends on, so no
``openssl`` or ``ssh-keygen`` binary is required. The certificates are self-signed: right for
loopback runs, tests and a private cluster; use a real CA for anything public.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hierfl.app.flower_internals import listed_nodes, registered_node_id
from hierfl.deploy.tools import flower_bin
from hierfl.errors import HierflError


class SecureSetupError(HierflError):
    """Certificates or keys could not be written, or a SuperNode could not be registered."""


@dataclass(frozen=True)
class TlsFiles:
    """The three PEM files of a TLS-enabled SuperLink.

    ``ca_cert`` is what clients trust (``--root-certificates`` for ``hierfl-client`` and
    ``root-certificates`` in the ``flwr`` connection); the server pair stays on the SuperLink.
    """

    ca_cert: Path
    server_cert: Path
    server_key: Path

    def superlink_args(self) -> list[str]:
        """The ``flower-superlink`` flags that switch its APIs to TLS with these files."""
        return [
            "--ssl-ca-certfile",
            str(self.ca_cert),
            "--ssl-certfile",
            str(self.server_cert),
            "--ssl-keyfile",
            str(self.server_key),
        ]


def _pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only, from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)  # an existing file keeps its old mode through O_CREAT


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_tls_files(
    folder: Path,
    *,
    hosts: Sequence[str] = ("127.0.0.1", "localhost"),
    days: int = 365,
    organization: str = "hierfl",
) -> TlsFiles:
    """Write a self-signed CA and a server certificate it signed into ``folder``.

    Args:
        folder: where ``ca.crt``, ``server.pem`` and ``server.key`` are written (created).
        hosts: every address clients dial; each becomes a subjectAltName (IP or DNS). TLS
            verification fails for an address that is not listed here.
        days: validity of both certificates.
        organization: the ``O=`` of both subjects.

    Returns:
        The paths of the three files.
    """
    if not hosts:
        raise SecureSetupError("make_tls_files needs at least one host for the subjectAltName")
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days))
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = _name(organization, f"{organization}-ca")
    ca_cert = _ca_certificate(ca_key, ca_name, valid)
    server_key = ec.generate_private_key(ec.SECP384R1())
    server_cert = (
        _builder(_name(organization, hosts[0]), ca_name, server_key.public_key(), valid)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA384())
    )
    files = TlsFiles(folder / "ca.crt", folder / "server.pem", folder / "server.key")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(files.server_key, _pem_private(server_key))
    _write_private(folder / "ca.key", _pem_private(ca_key))  # to sign more server certs later
    return files


Validity = tuple[datetime.datetime, datetime.datetime]


def _name(organization: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, valid: Validity
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
    )


def _ca_certificate(
    key: ec.EllipticCurvePrivateKey, name: x509.Name, valid: Validity
) -> x509.Certificate:
    """A self-signed CA that may sign server certificates (and nothing below them)."""
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        _builder(name, name, key.public_key(), valid)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA384())
    )


def make_supernode_key(private_key: Path) -> Path:
    """Write an ECDSA P-384 key pair in OpenSSH format; return the public key's path.

    The same files as ``ssh-keygen -t ecdsa -b 384 -N "" -f PRIVATE_KEY``: the private key goes
    to ``hierfl-client --auth-key``, the ``.pub`` file to ``flwr supernode register``.
    """
    key = ec.generate_private_key(ec.SECP384R1())
    _write_private(
        private_key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    )
    public_key = private_key.with_name(private_key.name + ".pub")
    public_key.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + b"\n"
    )
    return public_key


def _flwr(args: list[str], env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(
        [flower_bin("flwr"), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise SecureSetupError(
            f"`flwr {' '.join(args)}` exited with code {proc.returncode}: "
            f"{(proc.stdout + proc.stderr).strip()[-2000:]}"
        )
    return proc.stdout


def register_supernode(
    public_key: Path, connection: str, env: dict[str, str], *, timeout: float = 60.0
) -> int:
    """Register a SuperNode's public key with the SuperLink; return the node ID it was given.

    Args:
        public_key: the OpenSSH ``.pub`` file (see :func:`make_supernode_key`).
        connection: name of the SuperLink connection in ``$FLWR_HOME/config.toml``; it must
            carry ``root-certificates`` when the SuperLink uses TLS.
        env: environment for ``flwr``, with ``FLWR_HOME`` set (see ``launch.flower_env``).
        timeout: seconds before the ``flwr`` call is abandoned.
    """
    out = _flwr(["supernode", "register", str(public_key), connection], env, timeout)
    node_id = registered_node_id(out)
    if node_id is None:
        raise SecureSetupError(f"no node ID in the output of `flwr supernode register`: {out}")
    return node_id


def list_supernodes(
    connection: str, env: dict[str, str], *, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """The SuperLink's registered SuperNodes, as ``flwr supernode list --format json`` gives them.

    Each entry has at least ``node-id`` (a string) and ``status`` (``registered``, ``online``,
    ``offline`` ...).
    """
    out = _flwr(["supernode", "list", connection, "--format", "json"], env, timeout)
    nodes = listed_nodes(out)
    if nodes is None:
        raise SecureSetupError(f"no JSON in the output of `flwr supernode list`: {out}")
    return nodes


def main(argv: list[str] | None = None) -> None:
    """``python -m hierfl.deploy.secure FOLDER``: certificates and SuperNode keys."""
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m hierfl.deploy.secure",
        description="Write a self-signed CA + SuperLink certificate to FOLDER/certs and ECDSA "
        "P-384 SuperNode key pairs to FOLDER/keys/edge-<i>[.pub].",
    )
    p.add_argument("folder", type=Path)
    p.add_argument(
        "--host",
        action="append",
        help="address SuperNodes dial, repeatable (default 127.0.0.1 and localhost)",
    )
    p.add_argument("--keys", type=int, default=0, help="number of SuperNode key pairs")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing CA and certificate (every certificate and key already handed "
        "out stops working)",
    )
    args = p.parse_args(argv)
    certs = args.folder / "certs"
    if (certs / "ca.crt").exists() and not args.force:
        print(
            f"kept the CA and SuperLink certificate in {certs} (--force replaces them; every "
            "certificate and key handed out then stops working)"
        )
    else:
        tls = make_tls_files(certs, hosts=args.host or ("127.0.0.1", "localhost"))
        print(f"CA certificate (give to clients): {tls.ca_cert}")
        print(f"SuperLink certificate and key: {tls.server_cert} {tls.server_key}")
    for i in range(args.keys):
        private = args.folder / "keys" / f"edge-{i}"
        if private.exists() and not args.force:
            print(f"SuperNode {i}: kept {private} (already there)")
            continue
        public_key = make_supernode_key(private)
        print(f"SuperNode {i}: private {public_key.with_suffix('')}  public {public_key}")


if __name__ == "__main__":
    main()
