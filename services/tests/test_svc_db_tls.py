"""TLS to the database as the platform configures it (issue #19 item 6): a MariaDB that requires
secure transport with a certificate from a CA of its own (like the in-cluster MySQL), and the
service's ``MYSQL_SSL_CA`` / ``MYSQL_SSL_VERIFY_IDENTITY``.

The service connects only to a server whose certificate chains to the given CA, and with
``MYSQL_SSL_VERIFY_IDENTITY`` only when the certificate names the host it dialled.
Needs the MariaDB binaries and the ``openssl`` CLI (skipped without them, like the other MariaDB tests).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from svc_common import DBConfig
from svc_common.db import Database, DatabaseUnavailable

from services.tests.mariadb import MariaDB, find_binaries


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> Path:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=directory)
    return directory / f"{name}.pem"


def make_server_cert(directory: Path, ca: str, dns_name: str) -> tuple[Path, Path]:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={dns_name}",
             "-keyout", "server.key", "-out", "server.csr", cwd=directory)
    (directory / "ext.cnf").write_text(f"subjectAltName=DNS:{dns_name}\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem", cwd=directory)
    return directory / "server.pem", directory / "server.key"


@pytest.fixture(scope="module")
def tls_mariadb(tmp_path_factory):
    binaries = find_binaries()
    if binaries is None or shutil.which("openssl") is None:
        pytest.skip("needs the MariaDB server binaries and openssl")
    certs = tmp_path_factory.mktemp("certs")
    ca = make_ca(certs, "db-ca")
    other = make_ca(certs, "other-ca")
    cert, key = make_server_cert(certs, "db-ca", "localhost")  # like the in-cluster MySQL: names its host
    db = MariaDB(*binaries, extra_args=(f"--ssl-ca={ca}", f"--ssl-cert={cert}", f"--ssl-key={key}",
                                        "--require-secure-transport=ON"))
    try:
        db.start()
        password = db.create_database("tls", "tls_svc")
        db.ca, db.other_ca, db.password = str(ca), str(other), password
        yield db
    finally:
        db.stop()


def _db(server, host: str = "127.0.0.1", **overrides) -> Database:
    return Database(DBConfig(host=host, port=server.port, user="tls_svc", password=server.password, database="tls",
                             connect_timeout=2, query_timeout=5, pool_timeout=2, **overrides))


def _cipher(db: Database) -> str:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        return cur.fetchone()["Value"]


def test_the_right_ca_connects_encrypted(tls_mariadb):
    db = _db(tls_mariadb, ssl_ca=tls_mariadb.ca)
    try:
        assert _cipher(db)  # TLS, verified against the server's CA
    finally:
        db.close()


def test_a_server_from_another_ca_is_refused(tls_mariadb):
    db = _db(tls_mariadb, ssl_ca=tls_mariadb.other_ca)
    try:
        with pytest.raises(DatabaseUnavailable):
            _cipher(db)
    finally:
        db.close()


def test_verify_identity_checks_the_host_name(tls_mariadb):
    named = _db(tls_mariadb, host="localhost", ssl_ca=tls_mariadb.ca, ssl_verify_identity=True)
    wrong = _db(tls_mariadb, host="127.0.0.1", ssl_ca=tls_mariadb.ca, ssl_verify_identity=True)
    try:
        assert _cipher(named)
        with pytest.raises(DatabaseUnavailable):  # the certificate names localhost, not 127.0.0.1
            _cipher(wrong)
    finally:
        named.close()
        wrong.close()


def test_verify_identity_is_read_from_the_environment():
    env = {"MYSQL_SSL_CA": "/etc/mysql-ca/ca.pem", "MYSQL_SSL_VERIFY_IDENTITY": "true"}
    cfg = DBConfig.from_env(default_database="x", environ=env)
    assert cfg.ssl_ca == "/etc/mysql-ca/ca.pem" and cfg.ssl_verify_identity is True
    assert DBConfig.from_env(default_database="x", environ={}).ssl_verify_identity is False
