"""The sandbox's serving certificates: a cluster CA and the API server's certificate it signs.

kube-apiserver serves HTTPS with a certificate for the addresses clients dial (kubeadm's
``apiserver`` certificate: ``kubernetes``, ``kubernetes.default``, ``….svc``,
``….svc.cluster.local``, the Service IP ``10.96.0.1`` and the host's addresses), signed by the
cluster CA that kubeconfigs carry as ``certificate-authority-data``. The sandbox makes both when
it is created, in memory, with ECDSA P-256 keys (milliseconds; RSA keys take far longer),
and hands :mod:`ssl` a context that serves them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The in-cluster names kubeadm puts in the apiserver certificate (cmd/kubeadm/app/util/pkiutil
# GetAPIServerAltNames), and the ``kubernetes`` Service's ClusterIP the sandbox seeds.
_CLUSTER_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                  "kubernetes.default.svc.cluster.local", "localhost")
_CLUSTER_IPS = ("10.96.0.1", "127.0.0.1", "::1")


@dataclass(frozen=True)
class ServingCerts:
    """PEM of the CA certificate, and of the serving certificate and its key."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        """An :class:`ssl.SSLContext` serving the certificate (TLS 1.2+, as Go's default)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # ssl loads a certificate chain from files only; the files live for this call.
        fd, path = tempfile.mkstemp(prefix="sandbox-serving-", suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self.cert_pem + self.key_pem)
            context.load_cert_chain(path)
        finally:
            os.unlink(path)
        return context


def make_serving_certs(host: str) -> ServingCerts:
    """A new CA (``CN=kubernetes``, as kubeadm names it) and a serving certificate for
    ``host`` plus the cluster's usual names, valid for a year."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                     key_cert_sign=True, content_commitment=False,
                                     data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(_alt_names(host)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                     key_cert_sign=False, content_commitment=False,
                                     data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ServingCerts(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
    )


def _alt_names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in _CLUSTER_NAMES]
    ips = list(_CLUSTER_IPS)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host and host not in _CLUSTER_NAMES:
            names.append(x509.DNSName(host))
    else:
        if host not in ips and host not in ("0.0.0.0", "::"):
            ips.append(host)
    names.extend(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips)
    return names
