#!/usr/bin/env python3
"""A small Azure Key Vault (keys) + Entra ID token endpoint fake for ksec's tests.

No Key Vault emulator can be installed here, so this reproduces the parts of
the wire protocol ksec and sops use, and its format is checked with Azure's own
Python SDK (tests/it/kms_azure.rs):

* TLS only, with a throw-away CA generated at start (written to DIR/ca.pem);
* the challenge: a request without a valid bearer token gets 401 with
  `WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="https://vault.azure.net"`;
* `?api-version=` is required (400 otherwise);
* keys: POST /keys/{n}/create, GET /keys/{n}[/{v}], PATCH /keys/{n}/{v} (enable/disable),
  POST /keys/{n}/{v}/encrypt|decrypt|wrapkey|unwrapkey with RSA-OAEP-256, RSA-OAEP, RSA1_5;
  an empty version means the latest; errors as {"error":{"code","message"}};
* secrets (ksec export): PUT /secrets/{n} (new version; value, contentType, tags),
  GET /secrets/{n}[/{v}], GET /secrets/{n}/versions, PATCH /secrets/{n}/{v}
  (tags, enabled); names limited to [0-9a-zA-Z-]{1,127} as in the service;
  POST /_fake/fail-after?puts=N makes every secret PUT after the next N fail
  with 503 (the "server down halfway" test; no `puts` clears it);
* a token endpoint (/{tenant}/oauth2/v2.0/token, plus OpenID metadata and
  instance discovery) for client-secret and client-assertion (workload identity)
  credentials: point AZURE_AUTHORITY_HOST at https://127.0.0.1:PORT.

Fidelity is only as good as this file: no RBAC/access policies beyond
"encrypt-only" principals, no soft delete, no HSM keys.

Usage: azure_kv_fake.py DIR TENANT CLIENT_ID CLIENT_SECRET [ASSERTION]
Prints one JSON line {"port": N, "ca": "DIR/ca.pem"} when ready.
"""
import base64
import datetime
import json
import os
import secrets
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

API_VERSIONS = {"7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01"}
RESOURCE = "https://vault.azure.net"


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def int_bytes(i: int) -> bytes:
    return i.to_bytes((i.bit_length() + 7) // 8, "big")


def make_tls(dir_):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ksec test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = os.path.join(dir_, "ca.pem")
    with open(ca_path, "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    cert_path = os.path.join(dir_, "server.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    key_path = os.path.join(dir_, "server.key")
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return ca_path, cert_path, key_path


class Vault:
    def __init__(self, tenant, client_id, client_secret, assertion):
        self.tenant = tenant
        self.client_id = client_id
        self.client_secret = client_secret
        self.assertion = assertion
        self.lock = threading.Lock()
        self.keys = {}  # name -> list of versions (dicts), oldest first
        self.secrets = {}  # name -> list of versions (dicts), oldest first
        self.fail_after = None  # secret PUTs left before the fake starts failing
        self.tokens = {}  # token -> (expiry, client)
        self.requests = 0


def attributes(ver):
    """The attributes block keys and secrets share."""
    return {
        "enabled": ver["enabled"],
        "created": ver["created"],
        "updated": ver["updated"],
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    }


def padding_for(alg):
    if alg == "RSA-OAEP-256":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    if alg == "RSA-OAEP":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    if alg == "RSA1_5":
        return padding.PKCS1v15()
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ksec-azure-kv-fake"

    def log_message(self, fmt, *args):
        if os.environ.get("AZURE_FAKE_LOG"):
            sys.stderr.write("azure-fake: " + fmt % args + "\n")

    @property
    def vault(self) -> Vault:
        return self.server.vault

    def base(self):
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def send(self, status, obj=None, headers=None):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, code, message):
        self.send(status, {"error": {"code": code, "message": message}})

    def body(self):
        return self._body

    # ---- Entra ID -------------------------------------------------------
    def token_endpoint(self, tenant):
        form = {k: v[0] for k, v in parse_qs(self.body().decode()).items()}
        if tenant != self.vault.tenant:
            return self.send(400, {"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."})
        if form.get("grant_type") != "client_credentials" or form.get("client_id") != self.vault.client_id:
            return self.send(400, {"error": "unauthorized_client", "error_description": "AADSTS700016: unknown client"})
        ok = False
        if "client_secret" in form:
            ok = form["client_secret"] == self.vault.client_secret
        elif form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            ok = self.vault.assertion is not None and form.get("client_assertion") == self.vault.assertion
        if not ok:
            return self.send(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
        scope = form.get("scope", "")
        if RESOURCE + "/.default" not in scope.split():
            return self.send(400, {"error": "invalid_scope", "error_description": f"AADSTS70011: scope {scope} is not valid"})
        token = secrets.token_urlsafe(32)
        with self.vault.lock:
            self.vault.tokens[token] = (time.time() + 3600, form["client_id"])
        self.send(200, {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": token})

    def openid(self, tenant):
        b = self.base()
        self.send(200, {
            "token_endpoint": f"{b}/{tenant}/oauth2/v2.0/token",
            "authorization_endpoint": f"{b}/{tenant}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{b}/{tenant}/oauth2/v2.0/devicecode",
            "issuer": f"{b}/{tenant}/v2.0",
            "jwks_uri": f"{b}/{tenant}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "token"],
            "tenant_region_scope": "NA",
        })

    # ---- Key Vault ------------------------------------------------------
    def authorized(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            with self.vault.lock:
                t = self.vault.tokens.get(auth[7:])
            if t and t[0] > time.time():
                return True
        challenge = f'Bearer authorization="{self.base()}/{self.vault.tenant}", resource="{RESOURCE}"'
        self.send(401, {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                  {"WWW-Authenticate": challenge})
        return False

    def key_bundle(self, name, ver):
        pub = ver["priv"].public_key().public_numbers()
        return {
            "key": {
                "kid": f"{self.base()}/keys/{name}/{ver['version']}",
                "kty": "RSA",
                "key_ops": ["encrypt", "decrypt", "wrapKey", "unwrapKey", "sign", "verify"],
                "n": b64u(int_bytes(pub.n)),
                "e": b64u(int_bytes(pub.e)),
            },
            "attributes": attributes(ver),
            "tags": ver.get("tags") or {},
        }

    def find(self, name, version):
        with self.vault.lock:
            versions = self.vault.keys.get(name)
            if not versions:
                return None
            if not version:
                return versions[-1]
            for v in versions:
                if v["version"] == version:
                    return v
        return None

    def not_found(self, name, version=""):
        ident = f"{name}/{version}" if version else name
        self.error(404, "KeyNotFound", f"A key with (name/id) {ident} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command.")

    def handle_keys(self, method, parts):
        # parts: ["keys", name, ...]
        if len(parts) < 2 or not parts[1]:
            return self.error(400, "BadParameter", "key name required")
        name = parts[1]
        rest = parts[2:]
        if method == "POST" and rest == ["create"]:
            req = json.loads(self.body() or b"{}")
            kty = req.get("kty", "RSA")
            if kty not in ("RSA", "RSA-HSM"):
                return self.error(400, "BadParameter", f"key type {kty} is not supported by this fake")
            size = int(req.get("key_size") or 2048)
            now = int(time.time())
            ver = {
                "version": uuid.uuid4().hex,
                "priv": rsa.generate_private_key(public_exponent=65537, key_size=size),
                "enabled": (req.get("attributes") or {}).get("enabled", True),
                "created": now,
                "updated": now,
                "tags": req.get("tags"),
            }
            with self.vault.lock:
                self.vault.keys.setdefault(name, []).append(ver)
            return self.send(200, self.key_bundle(name, ver))
        if method == "GET" and len(rest) <= 1:
            version = rest[0] if rest else ""
            ver = self.find(name, version)
            if ver is None:
                return self.not_found(name, version)
            return self.send(200, self.key_bundle(name, ver))
        if method == "PATCH" and len(rest) <= 1:
            version = rest[0] if rest else ""
            ver = self.find(name, version)
            if ver is None:
                return self.not_found(name, version)
            req = json.loads(self.body() or b"{}")
            attrs = req.get("attributes") or {}
            if "enabled" in attrs:
                ver["enabled"] = bool(attrs["enabled"])
            ver["updated"] = int(time.time())
            return self.send(200, self.key_bundle(name, ver))
        if method == "POST" and len(rest) == 2 and rest[1] in ("encrypt", "decrypt", "wrapkey", "unwrapkey"):
            version, op = rest
            ver = self.find(name, version)
            if ver is None:
                return self.not_found(name, version)
            if not ver["enabled"]:
                return self.error(403, "Forbidden", f"Operation {op} is not allowed on a disabled key.")
            try:
                req = json.loads(self.body() or b"{}")
                alg = req.get("alg")
                value = unb64u(req.get("value") or "")
            except Exception:
                return self.error(400, "BadParameter", "The request body is not valid JSON with alg and value.")
            pad = padding_for(alg)
            if pad is None:
                return self.error(400, "BadParameter", f"Algorithm {alg!r} is not supported for {op}.")
            kid = f"{self.base()}/keys/{name}/{ver['version']}"
            try:
                if op in ("encrypt", "wrapkey"):
                    out = ver["priv"].public_key().encrypt(value, pad)
                else:
                    out = ver["priv"].decrypt(value, pad)
            except Exception:
                return self.error(400, "BadParameter", "Unable to decrypt specified value. The ciphertext is invalid or was produced with another key or algorithm.")
            return self.send(200, {"kid": kid, "value": b64u(out)})
        self.error(405, "MethodNotAllowed", f"{method} is not supported on this path by the fake")

    def secret_bundle(self, name, ver, with_value=True):
        b = {
            "id": f"{self.base()}/secrets/{name}/{ver['version']}",
            "attributes": attributes(ver),
            "tags": ver.get("tags") or {},
        }
        if ver.get("contentType"):
            b["contentType"] = ver["contentType"]
        if with_value:
            b["value"] = ver["value"]
        return b

    def handle_secrets(self, method, parts):
        import re
        if len(parts) < 2 or not re.fullmatch(r"[0-9a-zA-Z-]{1,127}", parts[1]):
            return self.error(400, "BadParameter", "The request URI contains an invalid name")
        name, rest = parts[1], parts[2:]
        with self.vault.lock:
            versions = list(self.vault.secrets.get(name, []))
        if method == "PUT" and not rest:
            with self.vault.lock:
                if self.vault.fail_after is not None:
                    if self.vault.fail_after <= 0:
                        return self.error(503, "ServiceUnavailable", "The fake was told to fail from here on.")
                    self.vault.fail_after -= 1
            try:
                req = json.loads(self.body() or b"{}")
            except Exception:
                return self.error(400, "BadParameter", "The request body is not valid JSON.")
            if not isinstance(req.get("value"), str):
                return self.error(400, "BadParameter", "Secret value is required.")
            now = int(time.time())
            ver = {
                "version": uuid.uuid4().hex,
                "value": req["value"],
                "contentType": req.get("contentType"),
                "tags": req.get("tags"),
                "enabled": (req.get("attributes") or {}).get("enabled", True),
                "created": now,
                "updated": now,
            }
            with self.vault.lock:
                self.vault.secrets.setdefault(name, []).append(ver)
            return self.send(200, self.secret_bundle(name, ver))
        if method == "GET" and rest == ["versions"]:
            return self.send(200, {"value": [self.secret_bundle(name, v, False) for v in versions], "nextLink": None})
        if method in ("GET", "PATCH") and len(rest) <= 1:
            version = rest[0] if rest else ""
            ver = None
            if versions:
                ver = versions[-1] if not version else next((v for v in versions if v["version"] == version), None)
            if ver is None:
                ident = f"{name}/{version}" if version else name
                return self.error(404, "SecretNotFound", f"A secret with (name/id) {ident} was not found in this key vault.")
            if method == "PATCH":
                req = json.loads(self.body() or b"{}")
                if "tags" in req:
                    ver["tags"] = req["tags"]
                if "contentType" in req:
                    ver["contentType"] = req["contentType"]
                if "enabled" in (req.get("attributes") or {}):
                    ver["enabled"] = bool(req["attributes"]["enabled"])
                ver["updated"] = int(time.time())
                return self.send(200, self.secret_bundle(name, ver, False))
            if not ver["enabled"]:
                return self.error(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
            return self.send(200, self.secret_bundle(name, ver))
        self.error(405, "MethodNotAllowed", f"{method} is not supported on this path by the fake")

    def route(self, method):
        # Always consume the body first: an early 401/400 must not leave bytes
        # on a keep-alive connection to be misread as the next request.
        n = int(self.headers.get("Content-Length") or 0)
        self._body = self.rfile.read(n) if n else b""
        with self.vault.lock:
            self.vault.requests += 1
        u = urlsplit(self.path)
        parts = u.path.strip("/").split("/") if u.path.strip("/") else []
        q = parse_qs(u.query)
        # Entra ID (no api-version, no bearer)
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"] and method == "POST":
            return self.token_endpoint(parts[0])
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return self.openid(parts[0])
        if parts[:3] == ["common", "discovery", "instance"]:
            b = self.base()
            return self.send(200, {
                "tenant_discovery_endpoint": f"{b}/{self.vault.tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": "127.0.0.1", "preferred_cache": "127.0.0.1", "aliases": ["127.0.0.1"]}],
            })
        if parts[:2] == ["_fake", "stats"]:
            return self.send(200, {"requests": self.vault.requests})
        if parts[:2] == ["_fake", "fail-after"] and method == "POST":
            n = q.get("puts", [""])[0]
            with self.vault.lock:
                self.vault.fail_after = int(n) if n else None
            return self.send(200, {"fail_after": self.vault.fail_after})
        # Key Vault: the SDKs send the first request without a token (and without its body) to get the challenge.
        if not self.authorized():
            return
        if q.get("api-version", [""])[0] not in API_VERSIONS:
            return self.error(400, "BadParameter", "The api-version query parameter is missing or not supported.")
        if parts and parts[0] == "keys":
            return self.handle_keys(method, parts)
        if parts and parts[0] == "secrets":
            return self.handle_secrets(method, parts)
        self.error(404, "NotFound", "unknown path")

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PATCH(self):
        self.route("PATCH")

    def do_PUT(self):
        self.route("PUT")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    dir_, tenant, client_id, client_secret = sys.argv[1:5]
    assertion = sys.argv[5] if len(sys.argv) > 5 else None
    ca, cert, key = make_tls(dir_)
    srv = Server(("127.0.0.1", 0), Handler)
    srv.vault = Vault(tenant, client_id, client_secret, assertion)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(json.dumps({"port": srv.server_address[1], "ca": ca}), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
