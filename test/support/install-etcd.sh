#!/usr/bin/env bash
# Installs Debian's etcd-server (etcd v3) for the HA tests and benchmarks,
# unless an etcd binary is already on the PATH. Tests and benchmarks start
# their own etcd on loopback with a temporary data directory
# (test/support/etcd.ts); nothing here starts or configures a service. On a
# host with systemd the package starts its own etcd on 127.0.0.1:2379; the
# tests use other ports and do not touch it.
set -euo pipefail
if command -v etcd >/dev/null 2>&1; then
  echo "etcd is installed: $(etcd --version | head -1)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "installing etcd-server needs root for apt-get; run: sudo $0" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
etcd --version | head -1
