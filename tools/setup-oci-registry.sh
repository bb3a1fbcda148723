#!/usr/bin/env bash
# The OCI registry (Debian's docker-registry, the CNCF distribution server)
# that tests/cli_publish.rs starts on loopback. Unpacked from its .deb into
# ~/.cache/decant/docker-registry rather than installed, so that no system
# service starts and no root is needed once the package lists are fresh.
# Idempotent; prints the path of the docker-registry binary.
set -euo pipefail
cache="${DECANT_CACHE:-$HOME/.cache/decant}"
root="$cache/docker-registry"
binary="$root/usr/bin/docker-registry"
if [[ ! -x "$binary" ]]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  if ! (cd "$work" && apt-get download docker-registry >&2); then
    if [ "$(id -u)" -ne 0 ]; then
      echo "setup-oci-registry: cannot download docker-registry and refreshing the package lists needs root" >&2
      exit 1
    fi
    apt-get update >&2
    (cd "$work" && apt-get download docker-registry >&2)
  fi
  mkdir -p "$root.partial"
  dpkg-deb -x "$work"/docker-registry_*.deb "$root.partial"
  rm -rf "$root"
  mv "$root.partial" "$root"
fi
echo "$binary"
