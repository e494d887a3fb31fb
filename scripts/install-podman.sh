#!/bin/sh
# Install what prebake's image builds need on Debian: podman and its helpers, runc (the OCI runtime
# that works on hosts where crun cannot set rlimits), and debootstrap for registry-less base images.
# Idempotent: installs only what is missing, and does nothing when everything is there.
set -eu

packages="podman buildah debootstrap uidmap slirp4netns runc catatonit"
missing=""
for package in $packages; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done

if [ -z "$missing" ]; then
    echo "install-podman: all present ($packages)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-podman: missing:$missing; run as root (or: sudo $0)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-podman: missing:$missing, and this is not a Debian system (no apt-get); install them by hand" >&2
    exit 1
fi
echo "install-podman: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $missing
