"""Certificates for a thousand simulated switches, made in-process in a couple of seconds.

ovs-pki takes ~0.3 s a certificate (an RSA key and two openssl processes each): fine for a
lab, five minutes for a thousand switches. Here the same shape (a switch CA, a controller
CA, the commonName "NAME id:..." the controller reads the name from) is made with the
`cryptography` package and P-256 keys. Switch i's files are sw{i}.key/sw{i}.crt, made for
the hypervisor the benchmark's world gives datapath id i + 1.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ovsdb_agent.sockets import TlsFiles

_DAY = datetime.timedelta(days=1)


def make(root: Path, switch_names: Sequence[str]) -> TlsFiles:
    """Write both CAs, the controller's key and certificate, and one per switch; returns
    what the controller needs (its files and the switch CA)."""
    root.mkdir(parents=True, exist_ok=True)
    switch_ca = _ca("switchca")
    controller_ca = _ca("controllerca")
    _write_cert(root / "switchca.pem", switch_ca[1])
    _write_cert(root / "controllerca.pem", controller_ca[1])
    ctl_key, ctl_cert = _leaf("controller", controller_ca)
    _write(root / "controller", ctl_key, ctl_cert)
    for i, name in enumerate(switch_names):
        _write(root / f"sw{i}", *_leaf(name, switch_ca))
    return TlsFiles(str(root / "controller.key"), str(root / "controller.crt"),
                    str(root / "switchca.pem"))


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"benchmark {name}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY).not_valid_after(now + _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(name: str, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
          ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                         f"{name} id:benchmark")]))
            .issuer_name(ca[1].subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY).not_valid_after(now + _DAY)
            .sign(ca[0], hashes.SHA256()))
    return key, cert


def _write(stem: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    stem.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    _write_cert(stem.with_suffix(".crt"), cert)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
