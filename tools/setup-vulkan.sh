#!/usr/bin/env bash
# Mesa's software Vulkan driver (lavapipe) and the Vulkan loader, which the
# `wgpu` feature's tests run on when the machine has no GPU. Idempotent: installs
# only what is missing, and refreshes the package lists only when the first
# install attempt cannot find the packages (a fresh container has none).
# Prints the lavapipe ICD file's path on stdout.
set -euo pipefail

packages=(mesa-vulkan-drivers libvulkan1)

find_icd() {
    local icd
    for icd in /usr/share/vulkan/icd.d/lvp_icd*.json /etc/vulkan/icd.d/lvp_icd*.json; do
        [ -f "$icd" ] && echo "$icd" && return 0
    done
    return 1
}

# No `ldconfig -p | grep -q`: grep's early exit kills ldconfig with SIGPIPE,
# which pipefail reports as a failure.
has_loader() {
    [[ "$(ldconfig -p)" == *"libvulkan.so.1 "* ]]
}

if ! find_icd >/dev/null || ! has_loader; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup-vulkan: lavapipe or the Vulkan loader is missing and installing" \
            "${packages[*]} needs root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${packages[@]}" >&2; then
        apt-get update >&2
        apt-get install -y --no-install-recommends "${packages[@]}" >&2
    fi
fi

icd="$(find_icd)" || {
    echo "setup-vulkan: ${packages[*]} are installed but no lavapipe ICD file" \
        "(lvp_icd*.json) is in /usr/share/vulkan/icd.d or /etc/vulkan/icd.d" >&2
    exit 1
}
echo "$icd"
