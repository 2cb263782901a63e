#!/usr/bin/env bash
# Installs a Debian package for a test or benchmark peer, unless its command
# is already there. Usage: apt-install.sh <command> <package>[|<fallback>] [more packages]
# Never starts a system service during the install (a policy-rc.d forbids
# it): the tests and benchmarks run their own, on loopback. Idempotent.
set -euo pipefail

command_name=$1
shift
if command -v "$command_name" >/dev/null 2>&1; then
  echo "$command_name is installed: $(command -v "$command_name")"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "installing $command_name needs root for apt-get; run: sudo $0 $command_name $*" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get on this machine: install $command_name by hand" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
cleanup() { [ "$created_policy" = 1 ] && rm -f "$policy"; return 0; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
for spec in "$@"; do
  installed=0
  IFS='|' read -ra choices <<< "$spec"
  for package in "${choices[@]}"; do
    if apt-get install -y -qq --no-install-recommends "$package" >/dev/null 2>&1; then
      installed=1
      break
    fi
  done
  if [ "$installed" = 0 ]; then
    echo "apt-get could not install any of: $spec" >&2
    exit 1
  fi
done
command -v "$command_name" >/dev/null 2>&1 || { echo "installed, but $command_name is still not on PATH" >&2; exit 1; }
echo "installed $command_name: $(command -v "$command_name")"
