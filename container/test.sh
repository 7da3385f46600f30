#!/usr/bin/env bash
# Build the Cloud Run image and prove it: run it with a read-only root and a port published on
# 127.0.0.1, pass the contract suite over HTTP, check PID 1 is gunicorn and not root, send
# SIGTERM with requests in flight, serve a model from an emulated Cloud Storage bucket, and
# build the image for a scikit-learn 1.4 model's own versions and serve that model from it.
# Prints the image size and the time to the first prediction.
#
# Run as root (`make container-test`, which also sets up .venv for the contract suite). It
# installs rootful podman from Debian's packages when missing. Settings:
#   BASE_IMAGE  python 3.11 base image. By default one is built here with debootstrap from the
#               configured Debian mirror and kept in podman storage: CI reaches no image
#               registry. Where one is reachable: docker.io/library/python:3.11-slim
#   IMAGE_TAG   tag to build (default localhost/sklearn-serve:test)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE_TAG=${IMAGE_TAG:-localhost/sklearn-serve:test}
LOCAL_BASE=localhost/sklearn-serve-base:bookworm
BASE_IMAGE=${BASE_IMAGE:-$LOCAL_BASE}
PY=.venv/bin/python
NAME=sklearn-serve-test-$$
# Any port but 8080 inside the container, to prove $PORT is honoured.
CONTAINER_PORT=9090
# Explicit, so the drain test knows how many requests the workers hold at once.
WORKERS=4
WORK=$(mktemp -d)

log() { printf '[container-test %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { log "FAIL: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    if command -v podman >/dev/null && podman container exists "$NAME" 2>/dev/null; then
        if ((rc != 0)); then
            log "container log:" >&2
            podman logs "$NAME" 2>&1 | tail -n 40 >&2
        fi
        podman rm --force --time 0 "$NAME" >/dev/null
    fi
    # A failed debootstrap can leave /proc and /sys mounted inside the root it was building.
    awk -v root="$WORK/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r |
        xargs -r -n 1 umount -l
    rm -rf --one-file-system "$WORK"
    ((rc == 0)) || log "FAIL (exit $rc)" >&2
}
trap cleanup EXIT

[[ $EUID -eq 0 ]] || die "run as root: rootful podman is what works on CI's machines"
[[ -x $PY ]] || die "no $PY: run \`make container-test\`, which sets it up"

install_tools() {
    local need=()
    command -v podman >/dev/null || need+=(podman)
    # crun 1.8 refuses this kernel's hybrid cgroup v1/v2 layout; runc handles it.
    command -v runc >/dev/null || need+=(runc)
    # netavark runs iptables for published ports but does not depend on it.
    [[ -x /usr/lib/podman/netavark ]] || need+=(netavark aardvark-dns)
    command -v iptables >/dev/null || need+=(iptables)
    if [[ $BASE_IMAGE == "$LOCAL_BASE" ]]; then
        command -v debootstrap >/dev/null || need+=(debootstrap)
    fi
    ((${#need[@]})) || return 0
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
        >"$WORK/apt.log" 2>&1 || { tail -n 20 "$WORK/apt.log" >&2; die "apt-get install failed"; }
}

configure_podman() {
    # A private config rather than /etc/containers: nothing on the host changes. Root here lacks
    # CAP_SYS_RESOURCE, so podman's default ulimits (1048576) cannot be set; use the host's hard
    # limits, and nproc no higher than pid_max, to which podman lowers its own limit.
    local nofile nproc pid_max
    nofile=$(ulimit -Hn)
    [[ $nofile == unlimited || $nofile -gt 1048576 ]] && nofile=1048576
    nproc=$(ulimit -Hu)
    pid_max=$(cat /proc/sys/kernel/pid_max)
    [[ $nproc == unlimited || $nproc -gt $pid_max ]] && nproc=$pid_max
    cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[network]
network_backend = "netavark"

[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF=$WORK/containers.conf
}

build_local_base() {
    # Debian bookworm's python3 is 3.11, like python:3.11-slim; the Dockerfile uses a venv at
    # a fixed path, so Debian's different interpreter location does not matter to it.
    local mirror root=$WORK/rootfs
    # shellcheck disable=SC2016  # $(REPO_URI) is apt's placeholder, not the shell's
    mirror=$(apt-get indextargets --no-release-info --format '$(REPO_URI)' \
        "Release: bookworm" "Identifier: Packages" | awk 'NR == 1')
    [[ -n $mirror ]] || die "no bookworm source in apt's configuration; set BASE_IMAGE instead"
    log "building $LOCAL_BASE with debootstrap (about 75 s, once per machine)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,netbase,tzdata \
        bookworm "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
        { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    # pip in the build reaches PyPI through whatever TLS-intercepting proxy the host trusts.
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null 2>&1
    fi
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
    tar -C "$root" --numeric-owner -cf - . | podman import --quiet \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$LOCAL_BASE" >/dev/null
    rm -rf --one-file-system "$root"
}

install_tools
configure_podman

if [[ $BASE_IMAGE == "$LOCAL_BASE" ]] && ! podman image exists "$LOCAL_BASE"; then
    started=$SECONDS
    build_local_base
    log "base image built in $((SECONDS - started)) s"
fi

# No MODEL_SHA256 build argument: the Dockerfile's own pin is what every other build uses.
log "building $IMAGE_TAG on $BASE_IMAGE"
started=$SECONDS
podman build --format docker --pull=missing --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --tag "$IMAGE_TAG" . >"$WORK/build.log" 2>&1 ||
    { tail -n 40 "$WORK/build.log" >&2; die "podman build failed"; }
size_mb=$(podman image inspect --format '{{.Size}}' "$IMAGE_TAG" |
    awk '{ printf "%.0f", $1 / 1e6 }')
log "built in $((SECONDS - started)) s: $size_mb MB"

# What ships: no compiler, pip, package cache or build input beyond the app itself.
root=$(podman image mount "$IMAGE_TAG")
leftovers=$(cd "$root" && ls -d usr/bin/cc usr/bin/gcc usr/bin/*-gcc-* opt/venv/bin/pip \
    root/.cache tmp/requirements.txt app/tests app/.git 2>/dev/null || true)
podman image unmount "$IMAGE_TAG" >/dev/null
[[ -z $leftovers ]] || die "the image ships ${leftovers//$'\n'/ }"

# Our modules and gunicorn.conf.py load from the bytecode compiled at build time: the runtime
# writes none, and compiling them would cost every cold start ~20 ms. `python -v` names each
# module's code source: a .pyc in quotes, or a bare .py path when it compiled the source.
compiled=$(podman run --rm --read-only --cap-drop all --entrypoint python "$IMAGE_TAG" -v -c \
    "import wsgi, importlib.machinery as m; m.SourceFileLoader('c', '/app/gunicorn.conf.py').get_code('c')" \
    2>&1 | grep -E "^# code object from '?/app/") || die "python -v named no module of /app"
from_source=$(grep -v "\.pyc'$" <<<"$compiled" || true)
[[ -z $from_source ]] || die "the image compiles at start: ${from_source//$'\n'/ }"
log "our $(wc -l <<<"$compiled") modules load from build-time bytecode"

# A read-only root; /dev/shm (where gunicorn.conf.py keeps its heartbeat files and
# prometheus_client's multiprocess directory) is the only writable place, as on Cloud Run.
# --cap-drop all: the service needs no capabilities. The host port is any free one. Short read
# deadlines, so the slow-client check below sees them cut slow connections off.
t0=$(date +%s.%N)
podman run --detach --name "$NAME" --read-only --read-only-tmpfs=false --cap-drop all \
    --env "PORT=$CONTAINER_PORT" --env "WEB_CONCURRENCY=$WORKERS" \
    --env GUNICORN_HEADER_TIMEOUT=3 --env GUNICORN_BODY_TIMEOUT=3 \
    --publish "127.0.0.1::$CONTAINER_PORT" "$IMAGE_TAG" >/dev/null
port=$(podman port "$NAME" "$CONTAINER_PORT/tcp")
port=${port##*:}
first_prediction=$("$PY" container/probe.py first-prediction --port "$port" --container "$NAME" \
    --since "$t0") ||
    die "no prediction from the container"
log "first prediction ${first_prediction} s after \`podman run\`"

# PID 1 must be gunicorn's master itself (serve.py runs it in process; exec form, so it gets
# SIGTERM) running as a non-root user.
pid=$(podman inspect --format '{{.State.Pid}}' "$NAME")
pid1=$(tr '\0' ' ' <"/proc/$pid/cmdline")
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
[[ $pid1 == "python serve.py " ]] || die "PID 1 is '$pid1', not gunicorn through serve.py"
((uid != 0)) || die "PID 1 runs as root"
if podman top "$NAME" huser | tail -n +2 | grep -qx root; then
    die "a process in the container runs as root"
fi
log "PID 1 is '$pid1' as uid $uid; no process runs as root"

log "contract suite against http://127.0.0.1:$port"
"$PY" -m pytest tests/service/test_contract.py --base-url "http://127.0.0.1:$port" -q -k base-url \
    -p no:cacheprovider

log "100 slow clients (headers, then bodies) beside a well-behaved one"
"$PY" -m bench.faults --scenario slow-clients --target container --port "$port" --deadline 3 \
    --duration 6 ||
    die "slow clients starved the container"

drain=$("$PY" container/probe.py drain --port "$port" --requests "$WORKERS" --container "$NAME") ||
    die "SIGTERM drain: ${drain:-see above}"
log "SIGTERM drain: $drain"
if podman logs "$NAME" 2>&1 | grep -q Traceback; then
    die "the container logged a traceback"
fi

# A model that is not the image's, from a bucket: gcp-storage-emulator on the host's loopback,
# the image on the host's network with STORAGE_EMULATOR_HOST and AIP_STORAGE_URI, read-only
# with an in-memory /tmp as on Cloud Run; then a wrong pin, which must stop the boot.
log "a model from Cloud Storage (gcp-storage-emulator on 127.0.0.1)"
gcs=$("$PY" -m container.gcs --image "$IMAGE_TAG") || die "serving a model from Cloud Storage"
log "$gcs"

# A model only scikit-learn can serve, trained with scikit-learn 1.4 in an environment of its
# own: the image built for its versions (MODEL_REQUIREMENTS, what the refusal to serve it
# elsewhere prints) serves it mounted read-only, answering as the estimator did there.
log "an image for a scikit-learn 1.4 model (MODEL_REQUIREMENTS)"
requirements=$("$PY" -m container.elsewhere prepare "$WORK/elsewhere") ||
    die "training and packaging with scikit-learn 1.4"
started=$SECONDS
podman build --format docker --pull=missing --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --build-arg "MODEL_REQUIREMENTS=$requirements" --tag "$IMAGE_TAG-elsewhere" . \
    >"$WORK/build-elsewhere.log" 2>&1 ||
    { tail -n 40 "$WORK/build-elsewhere.log" >&2; die "podman build with $requirements failed"; }
log "built with $requirements in $((SECONDS - started)) s"
elsewhere=$("$PY" -m container.elsewhere serve "$WORK/elsewhere" --image "$IMAGE_TAG-elsewhere") ||
    die "serving the scikit-learn 1.4 model from its image"
log "$elsewhere"

cat <<EOF
container-test passed in $SECONDS s
  image size:        $size_mb MB ($IMAGE_TAG on $BASE_IMAGE)
  first prediction:  $first_prediction s after \`podman run\`
  SIGTERM drain:     $drain
EOF
