#!/bin/sh
# SeaweedFS in one process (master, volume, filer, S3 gateway on 9000) with two S3
# identities: S3_ADMIN_USER (everything) and MODELOPS_S3_ACCESS_KEY_ID (read, write, list
# and tag on MODELOPS_BUCKET only).
set -eu
config=/tmp/s3.json
python3 - "$config" <<'PY'
import json, os, sys
bucket = os.environ["MODELOPS_BUCKET"]
identities = [
    {"name": "admin", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
     "credentials": [{"accessKey": os.environ["S3_ADMIN_USER"],
                      "secretKey": os.environ["S3_ADMIN_PASSWORD"]}]},
    {"name": "modelops", "actions": [f"{a}:{bucket}" for a in ("Read", "Write", "List", "Tagging")],
     "credentials": [{"accessKey": os.environ["MODELOPS_S3_ACCESS_KEY_ID"],
                      "secretKey": os.environ["MODELOPS_S3_SECRET_ACCESS_KEY"]}]},
]
with open(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    json.dump({"identities": identities}, f)
PY
exec weed server -dir=/data -ip.bind=0.0.0.0 -master.volumeSizeLimitMB=1024 \
    -volume.max=0 -s3 -s3.port=9000 -s3.config="$config" "$@"
