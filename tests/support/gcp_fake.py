#!/usr/bin/env python3
"""A small Google Cloud fake for ksec's tests: Cloud KMS (symmetric
encrypt/decrypt), Secret Manager (secrets, versions, labels), the OAuth 2.0
token endpoint and the GCE metadata server.

No GCP emulator for KMS exists, so this reproduces the REST surface ksec uses;
its wire format is checked with Google's own Python clients
(google-cloud-kms / google-cloud-secret-manager with transport="rest",
google-auth) in tests/it/gcp.rs.

* HTTPS with a throw-away CA (DIR/ca.pem, shared code with azure_kv_fake.py);
  every API call needs `Authorization: Bearer <token issued here>`: an unknown
  token gets 401 UNAUTHENTICATED, an expired one too (POST /_fake/expire-tokens
  expires every token issued so far, or only {"token"});
* POST /token: grant_type jwt-bearer (RS256 JWT signed with DIR/sa.json's key,
  aud = token_uri, exp in the future) or refresh_token (DIR/user.json);
  errors as {"error": "invalid_grant", "error_description": ...};
* KMS: POST /v1/{cryptoKey}:encrypt {"plaintext": b64} -> {"name": version,
  "ciphertext": b64, ...}; POST /v1/{cryptoKey}:decrypt {"ciphertext"} ->
  {"plaintext"}; the version is found from the ciphertext, as in KMS.
  Keys are made with POST /_fake/keys {"name"}; POST /_fake/rotate {"name"}
  adds a primary version; POST /_fake/version-state {"name","version","state"}
  (ENABLED/DISABLED/DESTROYED); POST /_fake/deny {"name","op"} answers 403
  PERMISSION_DENIED for that key and operation ("" clears);
* Secret Manager: POST /v1/projects/P/secrets?secretId=S, GET/PATCH
  (updateMask=labels) /v1/projects/P/secrets/S, GET /v1/projects/P/secrets
  (pageSize/pageToken), GET .../secrets/S/versions, POST .../secrets/S:addVersion, GET
  .../secrets/S/versions/{N|latest}:access (payload data + dataCrc32c);
  ids limited to [A-Za-z0-9_-]{1,255}; POST /_fake/fail-after {"adds": N}
  makes every addVersion after the next N fail with 503;
* POST /sts/v1/token (token exchange of DIR/oidc-token, as in workload
  identity federation) and POST /iam/v1/projects/-/serviceAccounts/E:generateAccessToken
  (impersonation); DIR/external.json is an external_account file using both;
* metadata server (plain HTTP, second port): GET
  /computeMetadata/v1/instance/service-accounts/default/token with
  `Metadata-Flavor: Google`.

Fidelity is only as good as this file: no IAM beyond /_fake/deny, no
CRC32C request checks, no key import, no regional endpoints.

Usage: gcp_fake.py DIR   Prints {"port", "metadata_port", "ca", "sa", "user", "external"}.
"""
import base64
import json
import os
import re
import secrets
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from azure_kv_fake import make_tls  # noqa: E402

KEY_RE = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def unb64u(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


class State:
    def __init__(self, token_uri):
        self.lock = threading.Lock()
        self.token_uri = token_uri
        self.tokens = {}  # token -> expiry
        self.keys = {}  # name -> {"versions": [ {"secret", "state"} ], "primary": n}
        self.deny = {}  # name -> op
        self.secrets = {}  # "projects/P/secrets/S" -> {"labels", "versions": [bytes], "createTime"}
        self.fail_after = None
        self.expired_before = 0
        self.sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_email = "ksec-test@fake-project.iam.gserviceaccount.com"
        self.refresh_token = "1//fake-refresh-" + secrets.token_hex(8)
        self.client_secret = "fake-client-secret-" + secrets.token_hex(4)
        self.federated_subject = "eyJ-fake-oidc-" + secrets.token_hex(8)

    def issue(self):
        t = "ya29.fake-" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[t] = time.time() + 3600
        return {"access_token": t, "expires_in": 3599, "token_type": "Bearer"}


def jwt_ok(state, jwt):
    try:
        h, c, sig = jwt.split(".")
        state.sa_key.public_key().verify(
            unb64u(sig), f"{h}.{c}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        claims = json.loads(unb64u(c))
        header = json.loads(unb64u(h))
    except (ValueError, InvalidSignature):
        return "Invalid JWT Signature."
    if header.get("alg") != "RS256":
        return "Invalid JWT: alg"
    if claims.get("aud") != state.token_uri:
        return "Invalid JWT: aud"
    if claims.get("iss") != state.sa_email:
        return "Invalid JWT: iss"
    now = time.time()
    if not (claims.get("iat", 0) - 300 <= now <= claims.get("exp", 0)):
        return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
    if not claims.get("scope"):
        return "Invalid JWT: no scope"
    return None


def self_signed_jwt_expiry(state, jwt):
    """Google's clients send a service account's self-signed JWT as the
    bearer token (no token endpoint); accepted when signed by DIR/sa.json's
    key and issued after the last /_fake/expire-tokens."""
    try:
        h, c, sig = jwt.split(".")
        state.sa_key.public_key().verify(
            unb64u(sig), f"{h}.{c}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        claims = json.loads(unb64u(c))
    except (ValueError, InvalidSignature):
        return None
    if claims.get("iss") != state.sa_email or claims.get("iat", 0) < state.expired_before:
        return None
    return claims.get("exp", 0)


def google_error(code, status, message):
    return code, {"error": {"code": code, "message": message, "status": status}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    @property
    def st(self):
        return self.server.state

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def json_body(self):
        b = self.body()
        return json.loads(b) if b else {}

    def authed(self):
        auth = self.headers.get("Authorization", "")
        tok = auth[7:] if auth.startswith("Bearer ") else None
        with self.st.lock:
            exp = self.st.tokens.get(tok)
        if exp is None and tok and tok.count(".") == 2:
            exp = self_signed_jwt_expiry(self.st, tok)
        if exp is None or exp < time.time():
            self.reply(*google_error(
                401, "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            ))
            return False
        return True

    # ------------------------------------------------------------ dispatch
    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        u = urlsplit(self.path)
        path, q = u.path, parse_qs(u.query)
        if getattr(self.server, "metadata", False):
            return self.metadata(path)
        if path == "/token" and method == "POST":
            return self.token()
        if path == "/sts/v1/token" and method == "POST":
            return self.sts()
        m = re.match(r"^/iam/v1/projects/-/serviceAccounts/([^/:]+):generateAccessToken$", path)
        if m and method == "POST":
            return self.impersonate(m.group(1))
        if path.startswith("/_fake/"):
            return self.control(path[7:], self.json_body())
        if not path.startswith("/v1/"):
            return self.reply(*google_error(404, "NOT_FOUND", "no such endpoint"))
        if not self.authed():
            self.body()
            return
        rest = path[4:]
        if ":" in rest.rsplit("/", 1)[-1]:
            name, op = rest.rsplit(":", 1)
            if op in ("encrypt", "decrypt") and method == "POST":
                return self.kms(name, op, self.json_body())
            if op == "addVersion" and method == "POST":
                return self.add_version(name, self.json_body())
            if op == "access" and method == "GET":
                return self.access(name)
        m = re.match(r"^(projects/[^/]+/secrets/[^/]+)/versions$", rest)
        if m and method == "GET":
            return self.list_versions(m.group(1))
        m = re.match(r"^projects/([^/]+)/secrets(?:/([^/]+))?$", rest)
        if m:
            return self.secret(method, m.group(1), m.group(2), q)
        return self.reply(*google_error(404, "NOT_FOUND", f"no such method {method} {path}"))

    # ------------------------------------------------------------ auth
    def token(self):
        form = {k: v[0] for k, v in parse_qs(self.body().decode()).items()}
        gt = form.get("grant_type")
        if gt == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            why = jwt_ok(self.st, form.get("assertion", ""))
            if why:
                return self.reply(400, {"error": "invalid_grant", "error_description": why})
        elif gt == "refresh_token":
            if form.get("refresh_token") != self.st.refresh_token or form.get(
                "client_secret"
            ) != self.st.client_secret:
                return self.reply(400, {"error": "invalid_grant", "error_description": "Bad Request"})
        else:
            return self.reply(400, {"error": "unsupported_grant_type", "error_description": str(gt)})
        self.reply(200, self.st.issue())

    def sts(self):
        """RFC 8693 token exchange, as sts.googleapis.com/v1/token does it."""
        form = {k: v[0] for k, v in parse_qs(self.body().decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
            return self.reply(400, {"error": "invalid_request", "error_description": "grant_type"})
        if form.get("subject_token") != self.st.federated_subject or not form.get("audience"):
            return self.reply(400, {"error": "invalid_grant", "error_description": "The subject token is not trusted."})
        t = self.st.issue()
        t["issued_token_type"] = "urn:ietf:params:oauth:token-type:access_token"
        self.reply(200, t)

    def impersonate(self, email):
        if not self.authed():
            return
        self.json_body()
        t = self.st.issue()
        expire = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        self.reply(200, {"accessToken": t["access_token"], "expireTime": expire})

    def metadata(self, path):
        if self.headers.get("Metadata-Flavor") != "Google":
            return self.reply(403, {"error": "Missing Metadata-Flavor:Google header."})
        if path == "/computeMetadata/v1/instance/service-accounts/default/token":
            return self.reply(200, self.st.issue())
        if path == "/computeMetadata/v1/project/project-id":
            data = b"fake-project"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        self.reply(404, {"error": "not found"})

    # ------------------------------------------------------------ control
    def control(self, what, b):
        st = self.st
        with st.lock:
            if what == "keys":
                st.keys[b["name"]] = {"versions": [{"secret": os.urandom(32), "state": "ENABLED"}], "primary": 1}
            elif what == "rotate":
                k = st.keys[b["name"]]
                k["versions"].append({"secret": os.urandom(32), "state": "ENABLED"})
                k["primary"] = len(k["versions"])
            elif what == "version-state":
                st.keys[b["name"]]["versions"][int(b["version"]) - 1]["state"] = b["state"]
            elif what == "deny":
                st.deny[b["name"]] = b.get("op", "")
            elif what == "expire-tokens" and b.get("token"):
                st.tokens[b["token"]] = 0
            elif what == "expire-tokens":
                for t in st.tokens:
                    st.tokens[t] = 0
                st.expired_before = time.time() + 1
            elif what == "fail-after":
                st.fail_after = b.get("adds")
            elif what == "secrets":
                return self.reply(200, {n: {"labels": s["labels"], "versions": len(s["versions"])}
                                        for n, s in st.secrets.items()})
            else:
                return self.reply(404, {})
        self.reply(200, {})

    # ------------------------------------------------------------ KMS
    def kms(self, name, op, b):
        st = self.st
        if not KEY_RE.match(name):
            return self.reply(*google_error(400, "INVALID_ARGUMENT", f"Invalid resource name: {name}"))
        with st.lock:
            key = st.keys.get(name)
            denied = st.deny.get(name) in (op, "all")
        if key is None:
            return self.reply(*google_error(404, "NOT_FOUND", f"CryptoKey {name} not found."))
        if denied:
            return self.reply(*google_error(
                403, "PERMISSION_DENIED",
                f"Permission 'cloudkms.cryptoKeyVersions.use{op.capitalize()}' denied on resource '{name}' (or it may not exist).",
            ))
        try:
            field = base64.b64decode(b.get("plaintext" if op == "encrypt" else "ciphertext", ""), validate=True)
        except ValueError:
            return self.reply(*google_error(400, "INVALID_ARGUMENT", "Invalid value: not base64"))
        if op == "encrypt":
            n = key["primary"]
            ver = key["versions"][n - 1]
            if ver["state"] != "ENABLED":
                return self.reply(*google_error(400, "FAILED_PRECONDITION", f"{name}/cryptoKeyVersions/{n} is not enabled, current state is: {ver['state']}."))
            nonce = os.urandom(12)
            ct = struct.pack(">I", n) + nonce + AESGCM(ver["secret"]).encrypt(nonce, field, name.encode())
            return self.reply(200, {
                "name": f"{name}/cryptoKeyVersions/{n}",
                "ciphertext": b64(ct),
                "ciphertextCrc32c": str(crc32c(ct)),
                "verifiedPlaintextCrc32c": False,
                "verifiedAdditionalAuthenticatedDataCrc32c": False,
                "protectionLevel": "SOFTWARE",
            })
        if len(field) < 16 + 16:
            return self.reply(*google_error(400, "INVALID_ARGUMENT", "Decryption failed: the ciphertext is invalid."))
        n = struct.unpack(">I", field[:4])[0]
        if not 1 <= n <= len(key["versions"]):
            return self.reply(*google_error(400, "INVALID_ARGUMENT", "Decryption failed: the ciphertext is invalid."))
        ver = key["versions"][n - 1]
        if ver["state"] != "ENABLED":
            return self.reply(*google_error(400, "FAILED_PRECONDITION", f"The request cannot be fulfilled. Resource {name}/cryptoKeyVersions/{n} has value {ver['state']} in field crypto_key_version.state. CryptoKeyVersion is disabled or destroyed."))
        try:
            pt = AESGCM(ver["secret"]).decrypt(field[4:16], field[16:], name.encode())
        except InvalidTag:
            return self.reply(*google_error(400, "INVALID_ARGUMENT", "Decryption failed: the ciphertext is invalid."))
        self.reply(200, {"plaintext": b64(pt), "plaintextCrc32c": str(crc32c(pt)), "usedPrimary": n == key["primary"], "protectionLevel": "SOFTWARE"})

    # ------------------------------------------------------------ Secret Manager
    def secret_json(self, name, s):
        return {"name": name, "replication": s["replication"], "createTime": s["createTime"],
                "labels": s["labels"], "etag": f"\"{s['etag']}\""}

    def secret(self, method, project, sid, q):
        st = self.st
        if sid is None and method == "POST":
            sid = q.get("secretId", [""])[0]
            b = self.json_body()
            if not SECRET_ID.match(sid):
                return self.reply(*google_error(400, "INVALID_ARGUMENT", "Secret id must match [A-Za-z0-9_-]{1,255}"))
            name = f"projects/{project}/secrets/{sid}"
            with st.lock:
                if name in st.secrets:
                    return self.reply(*google_error(409, "ALREADY_EXISTS", f"Secret [{name}] already exists."))
                s = st.secrets[name] = {"labels": b.get("labels", {}), "versions": [],
                                        "replication": b.get("replication", {"automatic": {}}),
                                        "createTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()), "etag": 1}
            return self.reply(200, self.secret_json(name, s))
        if sid is None and method == "GET":
            with st.lock:
                names = sorted(n for n in st.secrets if n.startswith(f"projects/{project}/secrets/"))
                size = int(q.get("pageSize", ["25000"])[0])
                start = int(q.get("pageToken", ["0"])[0] or 0)
                page = names[start:start + size]
                out = {"secrets": [self.secret_json(n, st.secrets[n]) for n in page], "totalSize": len(names)}
            if start + size < len(names):
                out["nextPageToken"] = str(start + size)
            return self.reply(200, out)
        name = f"projects/{project}/secrets/{sid}"
        b = self.json_body() if method == "PATCH" else None
        with st.lock:
            s = st.secrets.get(name)
            if s is None:
                return self.reply(*google_error(404, "NOT_FOUND", f"Secret [{name}] not found or has no versions."))
            if method == "PATCH":
                if "labels" not in q.get("updateMask", [""])[0]:
                    return self.reply(*google_error(400, "INVALID_ARGUMENT", "updateMask must name labels"))
                s["labels"] = b.get("labels", {})
                s["etag"] += 1
            return self.reply(200, self.secret_json(name, s))

    def add_version(self, name, b):
        st = self.st
        with st.lock:
            s = st.secrets.get(name)
            if s is None:
                return self.reply(*google_error(404, "NOT_FOUND", f"Secret [{name}] not found."))
            if st.fail_after is not None:
                if st.fail_after <= 0:
                    return self.reply(*google_error(503, "UNAVAILABLE", "The service is currently unavailable."))
                st.fail_after -= 1
            data = base64.b64decode(b["payload"]["data"])
            crc = b["payload"].get("dataCrc32c")
            if crc is not None and int(crc) != crc32c(data):
                return self.reply(*google_error(400, "INVALID_ARGUMENT", "Data corruption detected."))
            s["versions"].append(data)
            n = len(s["versions"])
        self.reply(200, {"name": f"{name}/versions/{n}", "createTime": s["createTime"], "state": "ENABLED",
                         "replicationStatus": {"automatic": {}}, "etag": "\"1\"", "clientSpecifiedPayloadChecksum": crc is not None})

    def list_versions(self, name):
        with self.st.lock:
            s = self.st.secrets.get(name)
            if s is None:
                return self.reply(*google_error(404, "NOT_FOUND", f"Secret [{name}] not found."))
            n = len(s["versions"])
        self.reply(200, {"versions": [{"name": f"{name}/versions/{i}", "state": "ENABLED"}
                                      for i in range(n, 0, -1)], "totalSize": n})

    def access(self, vname):
        st = self.st
        m = re.match(r"^(projects/[^/]+/secrets/[^/]+)/versions/([^/]+)$", vname)
        with st.lock:
            s = st.secrets.get(m.group(1)) if m else None
            if s is None or not s["versions"]:
                return self.reply(*google_error(404, "NOT_FOUND", f"Secret Version [{vname}] not found."))
            v = m.group(2)
            n = len(s["versions"]) if v == "latest" else int(v)
            if not 1 <= n <= len(s["versions"]):
                return self.reply(*google_error(404, "NOT_FOUND", f"Secret Version [{vname}] not found."))
            data = s["versions"][n - 1]
        self.reply(200, {"name": f"{m.group(1)}/versions/{n}",
                         "payload": {"data": b64(data), "dataCrc32c": str(crc32c(data))}})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    dir_ = sys.argv[1]
    ca, cert, key = make_tls(dir_)
    srv = Server(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    st = State(f"https://127.0.0.1:{port}/token")
    srv.state = st
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    md = Server(("127.0.0.1", 0), Handler)
    md.state = st
    md.metadata = True
    threading.Thread(target=md.serve_forever, daemon=True).start()
    sa_path = os.path.join(dir_, "sa.json")
    with open(sa_path, "w") as f:
        json.dump({
            "type": "service_account",
            "project_id": "fake-project",
            "private_key_id": "0123456789abcdef",
            "private_key": st.sa_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()).decode(),
            "client_email": st.sa_email,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": st.token_uri,
        }, f)
    user_path = os.path.join(dir_, "user.json")
    with open(user_path, "w") as f:
        json.dump({"type": "authorized_user", "client_id": "fake-client.apps.googleusercontent.com",
                   "client_secret": st.client_secret, "refresh_token": st.refresh_token,
                   "token_uri": st.token_uri}, f)
    subject_path = os.path.join(dir_, "oidc-token")
    with open(subject_path, "w") as f:
        f.write(st.federated_subject)
    ext_path = os.path.join(dir_, "external.json")
    with open(ext_path, "w") as f:
        json.dump({"type": "external_account",
                   "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k8s",
                   "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                   "token_url": f"https://127.0.0.1:{port}/sts/v1/token",
                   "service_account_impersonation_url":
                       f"https://127.0.0.1:{port}/iam/v1/projects/-/serviceAccounts/{st.sa_email}:generateAccessToken",
                   "credential_source": {"file": subject_path}}, f)
    print(json.dumps({"port": port, "metadata_port": md.server_address[1], "ca": ca,
                      "sa": sa_path, "user": user_path, "external": ext_path}), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
