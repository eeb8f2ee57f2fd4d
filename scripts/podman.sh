#!/bin/sh
# podman as the container test runs it (tests/tests/container.rs,
# scripts/test.sh): vfs storage and runc work where overlay and crun do not,
# with the settings of scripts/containers.conf. Any podman command:
#   sh scripts/podman.sh build --format docker -t ccgate-server .
CONTAINERS_CONF="$(cd "$(dirname "$0")" && pwd)/containers.conf"
export CONTAINERS_CONF
exec podman --storage-driver=vfs --runtime runc "$@"
