#!/usr/bin/env python3
"""Independent client for the Azure Key Vault fake's secrets API: Azure's own
Python SDK (azure-keyvault-secrets + azure-identity). Reads back what
`ksec export` wrote, and can create a secret ksec did not write.

Usage:
  azure_secrets_check.py VAULT_URL TENANT CLIENT_ID SECRET get NAME...
      prints {NAME: {"value", "tags", "content_type", "versions"} | null}
  azure_secrets_check.py VAULT_URL TENANT CLIENT_ID SECRET set NAME VALUE
"""
import json
import sys

from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

url, tenant, client_id, secret, op = sys.argv[1:6]
cred = ClientSecretCredential(tenant, client_id, secret, authority=url, disable_instance_discovery=True)
client = SecretClient(url, cred, verify_challenge_resource=False)
if op == "set":
    client.set_secret(sys.argv[6], sys.argv[7], tags={"owner": "other-team"})
    print("{}")
    sys.exit(0)
out = {}
for name in sys.argv[6:]:
    try:
        s = client.get_secret(name)
    except ResourceNotFoundError:
        out[name] = None
        continue
    versions = list(client.list_properties_of_secret_versions(name))
    out[name] = {
        "value": s.value,
        "tags": s.properties.tags or {},
        "content_type": s.properties.content_type,
        "versions": len(versions),
    }
print(json.dumps(out))
