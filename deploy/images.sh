#!/usr/bin/env bash
# make images: builds tweetdomains-collector, -trainer and -api with podman (or docker), prints
# each image's size and its size over its base, and checks each: it runs as its non-root uid,
# `tweetdomains --help` works inside, the collector has no torch, the API no CUDA libraries.
#
# Settings (environment):
#   BASE_IMAGE       base of all three (default python:3.11-slim where it can be pulled, else
#                    a Debian bookworm image built here by deploy/base-image.sh)
#   TRAINER_BASE     base of the trainer (default: the CUDA image where it can be pulled, else
#                    BASE_IMAGE: a CPU-only trainer)
#   TORCH_WHEELHOUSE_DIR  a folder holding the torch wheel (default $PIP_FIND_LINKS when it
#                    holds one); mounted into the build instead of PyTorch's index
#   TWEETDOMAINS_TAG image tag (default 0.1.0)
# Last line: images=3 api_added_mb=N collector_added_mb=N trainer_added_mb=N
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/deploy/containers.conf}"
engine="${ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}"
tag="${TWEETDOMAINS_TAG:-0.1.0}"
local_base=localhost/tweetdomains-base:bookworm
cuda_image=docker.io/nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

have_or_pull() {  # an image that exists here, or can be pulled within a minute
  $engine image inspect "$1" >/dev/null 2>&1 || timeout 60 $engine pull -q "$1" >/dev/null 2>&1
}

base="${BASE_IMAGE:-}"
if [[ -z "$base" ]]; then
  if have_or_pull docker.io/library/python:3.11-slim; then base=docker.io/library/python:3.11-slim; else
    echo "python:3.11-slim cannot be pulled: using $local_base"
    deploy/base-image.sh "$local_base"
    base="$local_base"
  fi
fi
trainer_base="${TRAINER_BASE:-}"
if [[ -z "$trainer_base" ]]; then
  if [[ "$base" == docker.io/library/python:3.11-slim ]] && have_or_pull "$cuda_image"; then trainer_base="$cuda_image"; else
    echo "the CUDA image is not used here: the trainer is built on $base (CPU torch)"
    trainer_base="$base"
  fi
fi

build=(build --network=host)
if [[ "$engine" == podman ]]; then
  # The host's CA bundle and a pip.conf that trusts it (builds behind a TLS proxy).
  build+=(-v /etc/ssl/certs:/etc/ssl/certs:ro -v "$PWD/deploy/pip.conf:/etc/pip.conf:ro")
  wheelhouse="${TORCH_WHEELHOUSE_DIR:-${PIP_FIND_LINKS:-}}"
  if [[ -n "$wheelhouse" ]] && compgen -G "$wheelhouse/torch-*.whl" >/dev/null; then
    echo "torch from the wheelhouse $wheelhouse"
    build+=(-v "$wheelhouse:/wheelhouse:ro" --build-arg TORCH_WHEELHOUSE=/wheelhouse)
  fi
fi
cpu_index=(--build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu)

mb() { $engine image inspect --format '{{.Size}}' "$1" | awk '{printf "%d", $1 / 1000000}'; }

declare -A added
for service in collector api trainer; do
  image="tweetdomains-$service:$tag"
  args=(--build-arg "BASE_IMAGE=$base")
  from="$base"
  if [[ "$service" == trainer ]]; then
    args=(--build-arg "CUDA_IMAGE=$trainer_base")
    from="$trainer_base"
    [[ "$trainer_base" == "$cuda_image" ]] || args+=("${cpu_index[@]}")
  fi
  start=$SECONDS
  log="$(mktemp /tmp/tweetdomains-build-$service.XXXXXX)"
  if ! $engine "${build[@]}" "${args[@]}" -f "services/$service/Dockerfile" -t "$image" . >"$log" 2>&1; then
    tail -40 "$log"
    echo "FAILED: building $image (full log: $log)"
    exit 1
  fi
  rm -f "$log"
  added[$service]=$(($(mb "$image") - $(mb "$from")))
  echo "$image: built in $((SECONDS - start)) s, $(mb "$image") MB, ${added[$service]} MB over $from"

  # The checks, in the image itself.
  uid="$(awk '/^USER/ {u = $2} END {print u}' "services/$service/Dockerfile")"
  run=($engine run --rm --network=none --entrypoint)
  got="$("${run[@]}" id "$image" -u)"
  [[ "$got" == "$uid" && "$got" != 0 ]] || { echo "FAILED: $image runs as uid $got, not $uid"; exit 1; }
  "${run[@]}" tweetdomains "$image" --help >/dev/null || { echo "FAILED: tweetdomains --help in $image"; exit 1; }
  case "$service" in
    collector)
      "${run[@]}" python "$image" -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)" \
        || { echo "FAILED: torch is importable in $image"; exit 1; } ;;
    api)
      cuda="$("${run[@]}" find "$image" /opt/venv /usr/lib /usr/local \( -name 'libcudart*' -o -name 'libcudnn*' \
        -o -name 'libcublas*' -o -name 'libnccl*' -o -name 'libcuda.so*' \) -print -quit 2>/dev/null || true)"
      [[ -z "$cuda" ]] || { echo "FAILED: $image holds CUDA libraries ($cuda)"; exit 1; } ;;
  esac
  echo "$image: ok (uid $uid, tweetdomains --help$( [[ $service == collector ]] && echo ', no torch')$( [[ $service == api ]] && echo ', no CUDA libraries'))"
done
echo "images=3 api_added_mb=${added[api]} collector_added_mb=${added[collector]} trainer_added_mb=${added[trainer]}"
