#!/usr/bin/env bash
# Installs nginx from Debian's packages, for the benchmarks' peer_nginx
# variant (grpc_pass with least_conn as a per-request proxy). The package
# must not start a system nginx (it would listen on port 80 of every
# interface): scripts/apt-install.sh forbids service starts during the install.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../scripts/apt-install.sh" nginx 'nginx-light|nginx'
# Should a service have started anyway, stop it: the benchmark runs its own, on loopback.
nginx -s quit >/dev/null 2>&1 || true
