#!/usr/bin/env bash
# Builds the Redis and S3 stand-ins deploy/compose.test.yml names, on the local base image
# (deploy/base-image.sh). Images that exist are rebuilt from podman's layer cache (seconds).
set -euo pipefail
cd "$(dirname "$0")"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/containers.conf}"
base="${BASE_IMAGE:-localhost/tweetdomains-base:bookworm}"
./base-image.sh "$base"
build=(podman build --network=host -v /etc/ssl/certs:/etc/ssl/certs:ro -v "$PWD/pip.conf:/etc/pip.conf:ro"
  --build-arg "BASE_IMAGE=$base")
for standin in redis s3; do
  start=$SECONDS
  log="$(mktemp /tmp/tweetdomains-standin-$standin.XXXXXX)"
  "${build[@]}" -f "standins/$standin.Dockerfile" -t "localhost/tweetdomains-standin-$standin:bookworm" \
    standins >"$log" 2>&1 || { tail -30 "$log"; echo "FAILED: building the $standin stand-in ($log)"; exit 1; }
  rm -f "$log"
  echo "stand-in localhost/tweetdomains-standin-$standin:bookworm: ready in $((SECONDS - start)) s"
done
