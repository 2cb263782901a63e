#!/usr/bin/env bash
# Installs nginx from Debian's packages, for the benchmarks' peer_nginx
# variant (grpc_pass with least_conn as a per-request proxy). The package
# must not start a system nginx (it would listen on port 80 of every
# interface): a policy-rc.d forbids service starts during the install.
set -euo pipefail

if command -v nginx >/dev/null 2>&1; then
  echo "nginx is installed: $(nginx -v 2>&1)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "installing nginx needs root for apt-get; run: sudo $0" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get on this machine: install nginx by hand" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
cleanup() { [ "$created_policy" = 1 ] && rm -f "$policy"; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends nginx >/dev/null
# Should a service have started anyway, stop it: the benchmark runs its own, on loopback.
nginx -s quit >/dev/null 2>&1 || true
echo "installed $(nginx -v 2>&1)"
