#!/usr/bin/env bash
# Installs Debian's python3-grpcio (gRPC C core, xDS compiled in) for the
# tests' real non-Node xDS client, unless /usr/bin/python3 can already
# import grpc. Debian's Python is used on purpose (a pyenv one may shadow it).
set -euo pipefail
if /usr/bin/python3 -c 'import grpc' >/dev/null 2>&1; then
  echo "python3-grpcio is installed: $(/usr/bin/python3 -c 'import grpc; print(grpc.__version__)')"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "installing python3-grpcio needs root for apt-get; run: sudo $0" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3-grpcio >/dev/null
/usr/bin/python3 -c 'import grpc; print("python3-grpcio", grpc.__version__)'
