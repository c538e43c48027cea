#!/usr/bin/env python3
"""Reads (and seeds) the GCP fake's Secret Manager with Google's own client
(google-cloud-secret-manager, REST transport, service-account credentials).

Usage: gcp_secrets_check.py ENDPOINT SA_JSON PROJECT get ID...
       gcp_secrets_check.py ENDPOINT SA_JSON PROJECT set ID VALUE   (a foreign secret)
Prints JSON {ID: {"value", "labels", "versions"}} for get.
"""
import json
import sys

from google.api_core.client_options import ClientOptions
from google.api_core.exceptions import NotFound
from google.cloud import secretmanager
from google.oauth2 import service_account

endpoint, sa, project, cmd, *args = sys.argv[1:]
creds = service_account.Credentials.from_service_account_file(
    sa, scopes=["https://www.googleapis.com/auth/cloud-platform"]
)
c = secretmanager.SecretManagerServiceClient(
    credentials=creds, transport="rest", client_options=ClientOptions(api_endpoint=endpoint)
)
parent = f"projects/{project}"
if cmd == "set":
    sid, value = args
    s = c.create_secret(request={"parent": parent, "secret_id": sid,
                                 "secret": {"replication": {"automatic": {}}, "labels": {"owner": "team-x"}}})
    c.add_secret_version(request={"parent": s.name, "payload": {"data": value.encode()}})
    print("{}")
    sys.exit(0)
out = {}
for sid in args:
    name = f"{parent}/secrets/{sid}"
    try:
        s = c.get_secret(request={"name": name})
    except NotFound:
        out[sid] = None
        continue
    v = c.access_secret_version(request={"name": f"{name}/versions/latest"})
    versions = list(c.list_secret_versions(request={"parent": name}))
    out[sid] = {"value": v.payload.data.decode(), "labels": dict(s.labels), "versions": len(versions)}
print(json.dumps(out))
