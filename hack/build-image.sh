#!/usr/bin/env bash
# Builds the project's OCI image without a container engine or an image registry:
#   a Debian bookworm root filesystem from debootstrap (cached by suite + package list),
#   images/mlpipeline/install.sh run in it by chroot (the same script the Dockerfile RUNs),
#   one layer and the image config (ENV, USER, WORKDIR, CMD, LABEL read from the Dockerfile) by umoci,
#   and a tar of the OCI layout, for `ctr -n k8s.io images import --base-name REPO ARCHIVE`.
# The result is cached by a hash of its inputs: with nothing changed a second run takes seconds.
#
#   hack/build-image.sh           build (or reuse); prints the archive's path on stdout
#   hack/build-image.sh check     unpack the built archive's layer and run the image's commands in it
#                                 as uid 10001 (a test of the archive, not a step of the build)
#
# Needs root, debootstrap, umoci, uv (PATH, $UV or .venv/bin/uv), the Debian mirror and PyPI.
# Environment: MLP_CACHE (default ~/.cache/mlpipeline), MLP_IMAGE_OUT (default .cluster/image),
# MLP_IMAGE_REPO (default ghcr.io/mlpipeline/mlpipeline), MLP_DEBIAN_MIRROR (default: apt's),
# MLP_IMAGE_FORCE=1 (rebuild the image), MLP_IMAGE_FORCE_BASE=1 (debootstrap again too),
# MLP_IMAGE_EXTRAS=deep (the variant with PyTorch and XGBoost; not built by make test: 6 GB more).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SELF=hack/build-image.sh
RECIPE=images/mlpipeline
CACHE=${MLP_CACHE:-$HOME/.cache/mlpipeline}/image
OUT=${MLP_IMAGE_OUT:-$ROOT/.cluster/image}
REPO=${MLP_IMAGE_REPO:-ghcr.io/mlpipeline/mlpipeline}
SUITE=bookworm
VARIANT=minbase
export LC_ALL=C
START=$(date +%s.%N)

log() { printf '[build-image %5.1fs] %s\n' "$(awk "BEGIN {print $(date +%s.%N) - $START}")" "$*" >&2; }
die() { printf '[build-image] error: %s\n' "$*" >&2; exit 1; }
sha() { sha256sum | cut -c1-64; }

[[ $(id -u) == 0 ]] || die "needs root (debootstrap, chroot)"
if ! command -v debootstrap >/dev/null || ! command -v umoci >/dev/null; then
  log "installing Debian's debootstrap and umoci"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      debootstrap umoci >/dev/null; } || die "needs debootstrap and umoci: apt-get install debootstrap umoci"
fi
UV=${UV:-$(command -v uv || echo "$ROOT/.venv/bin/uv")}
[[ -x $UV ]] || die "uv not found: run 'make install' or set UV"
PYTHON=${PYTHON:-python3}

mirror() {
  [[ -n ${MLP_DEBIAN_MIRROR:-} ]] && { echo "$MLP_DEBIAN_MIRROR"; return; }
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}' | grep -E '/debian/?$' | head -1 || true)
  [[ -n $uri ]] || uri=$(grep -hE '^deb +http\S+/debian/? ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# The image config, read from the Dockerfile so the two cannot drift: FROM, ENV, USER, WORKDIR,
# ENTRYPOINT, CMD, LABEL (a subset of Dockerfile syntax; anything this parser does not know fails).
dockerfile_config() {
  "$PYTHON" - "$RECIPE/Dockerfile" <<'EOF'
import json, re, shlex, sys
text = re.sub(r"\\\n", " ", open(sys.argv[1]).read())
final, conf = False, {"env": [], "label": [], "user": "", "workdir": "", "entrypoint": None, "cmd": None, "from": ""}
for line in text.splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    word, _, rest = line.partition(" ")
    word, rest = word.upper(), rest.strip()
    if word == "FROM":
        final = " AS " not in rest.upper()   # the last stage has no name
        conf["from"] = rest.split()[-1] if final else conf["from"]
    elif not final or word in ("ARG", "RUN", "COPY"):
        continue
    elif word in ("ENV", "LABEL"):
        pairs = shlex.split(rest)
        if not all("=" in p for p in pairs):
            sys.exit(f"{word} {rest}: only KEY=VALUE pairs are understood")
        conf[word.lower()] += pairs
    elif word in ("USER", "WORKDIR"):
        conf[word.lower()] = rest
    elif word in ("ENTRYPOINT", "CMD"):
        conf[word.lower()] = json.loads(rest)   # exec form only
    else:
        sys.exit(f"unexpected Dockerfile instruction in the final stage: {word}")
if conf["from"] != "debian:bookworm-slim":
    sys.exit(f"the Dockerfile's base is {conf['from']}: this script builds debian:bookworm-slim's suite")
print(json.dumps(conf))
EOF
}

# The project's inputs: what install.sh installs, and the recipe.
source_files() {
  { printf '%s\n' pyproject.toml README.md
    find operator -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' | sort
  } | while read -r f; do [[ -f $f ]] && echo "$f"; done
}

apt_packages() { sed -n 's/^APT_PACKAGES="\(.*\)"$/\1/p' "$RECIPE/install.sh"; }

base_key() {
  printf '%s\n' "$SUITE" "$VARIANT" "$(mirror)" "$(apt_packages)" "$(debootstrap --version)" "base-v1" | sha
}

content_key() {
  { base_key; "$UV" --version; echo "extras=${MLP_IMAGE_EXTRAS:-}"
    { source_files; find "$RECIPE" -type f | sort; echo "$SELF"; } | while read -r f; do
      printf '%s\0' "$f"; cat "$f"
    done
  } | sha
}

# Runs a command in a private mount namespace, chrooted into $1 with /proc, /dev and the extra
# bind mounts "src:dst" in $MOUNTS, as $CHROOT_USER (uid:gid) when set; every mount goes away with
# the namespace.
in_chroot() {
  local rootfs=$1; shift
  unshare --mount --propagation private -- bash -euc '
    rootfs=$1; shift
    mount -t proc proc "$rootfs/proc"
    mount --rbind /dev "$rootfs/dev"
    for m in ${MOUNTS:-}; do mkdir -p "$rootfs${m#*:}"; mount --bind "${m%%:*}" "$rootfs${m#*:}"; done
    exec chroot ${CHROOT_USER:+--userspec=$CHROOT_USER --groups=${CHROOT_USER#*:}} "$rootfs" "$@"' \
    bash "$rootfs" "$@"
}

build_base() {  # -> $CACHE/base-KEY/rootfs
  local key; key=$(base_key)
  BASE=$CACHE/base-${key:0:16}
  if [[ -d $BASE/rootfs && -z ${MLP_IMAGE_FORCE_BASE:-} ]]; then log "base root fs cached: $BASE"; return; fi
  local packages; packages=$(apt_packages | tr ' ' ',')
  rm -rf "$BASE.tmp" && mkdir -p "$BASE.tmp"
  log "debootstrap --variant=$VARIANT --include=$packages $SUITE ($(mirror))"
  debootstrap --variant="$VARIANT" --include="$packages" "$SUITE" "$BASE.tmp/rootfs" "$(mirror)" \
    >"$BASE.tmp/debootstrap.log" 2>&1 || { tail -20 "$BASE.tmp/debootstrap.log" >&2; die "debootstrap failed"; }
  # Point releases come with the suite; add bookworm-updates and -security as debian:bookworm-slim
  # does, and apply them.
  cat >"$BASE.tmp/rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $(mirror)
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -f "$BASE.tmp/rootfs/etc/apt/sources.list"
  cp /etc/resolv.conf "$BASE.tmp/rootfs/etc/resolv.conf"
  log "apt-get upgrade (bookworm-updates, bookworm-security)"
  in_chroot "$BASE.tmp/rootfs" sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
    apt-get upgrade -y -qq >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*' \
    >>"$BASE.tmp/debootstrap.log" 2>&1 || { tail -20 "$BASE.tmp/debootstrap.log" >&2; die "apt-get upgrade failed"; }
  rm -rf "$BASE" && mv "$BASE.tmp" "$BASE"
  # Older bases (another suite or package list) are not needed any more.
  find "$CACHE" -maxdepth 1 -name 'base-*' ! -name "base-${key:0:16}" -exec rm -rf {} +
  log "base root fs: $(du -sh "$BASE/rootfs" | cut -f1)"
}

# The runtime dependencies' inputs: a change of the code alone does not rebuild their layer.
deps_key() {  # of what the layer installs: pyproject's dependencies, not its tools' settings
  { base_key; "$UV" --version; echo "extras=${MLP_IMAGE_EXTRAS:-}"; echo deps-v2
    "$PYTHON" -c 'import json, sys, tomllib; d = tomllib.load(open("pyproject.toml", "rb"))
p = d["project"]; extras = {k: v for k, v in p.get("optional-dependencies", {}).items() if k != "dev"}
json.dump([d.get("build-system"), p.get("requires-python"), p.get("dependencies"), extras], sys.stdout, sort_keys=True)'
    for f in "$RECIPE/install.sh" "$SELF"; do printf '%s\0' "$f"; cat "$f"; done
  } | sha
}

# Runs install.sh's PHASE in the root fs $1 with the project's sources in /tmp/src, then removes
# what a container runtime provides at run time and the build's leftovers.
install_phase() {
  local rootfs=$1 phase=$2
  mkdir -p "$rootfs/tmp/src" "$rootfs/tmp/bin"
  source_files | tar -cf - -T - | tar -xf - -C "$rootfs/tmp/src"
  cp "$RECIPE/install.sh" "$rootfs/tmp/install.sh"
  cp "$UV" "$rootfs/tmp/bin/uv"
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  # This machine's way to PyPI for the build only (its CA bundle, a proxy, an index), not the image's.
  local -a netenv=()
  local ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt} var
  [[ -f $ca ]] && cp "$ca" "$rootfs/tmp/build-ca.crt" && netenv+=(SSL_CERT_FILE=/tmp/build-ca.crt)
  for var in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy \
    UV_INDEX_URL UV_DEFAULT_INDEX UV_EXTRA_INDEX_URL UV_INDEX; do
    [[ -n ${!var:-} ]] && netenv+=("$var=${!var}")
  done
  log "install.sh PHASE=$phase in the chroot (uv cache $CACHE/uv-cache)"
  MOUNTS="$CACHE/uv-cache:/var/cache/uv" in_chroot "$rootfs" /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "${netenv[@]}" \
    UV=/tmp/bin/uv UV_CACHE_DIR=/var/cache/uv EXTRAS="${MLP_IMAGE_EXTRAS:-}" PHASE="$phase" \
    sh /tmp/install.sh /tmp/src >&2
  rm -rf "$rootfs"/tmp/* "$rootfs"/tmp/.[!.]* "$rootfs/var/cache/uv" "$rootfs"/dev/* \
    "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname" "$rootfs/var/cache/ldconfig/aux-cache"
}

layer_tar() {  # DIR TAR: the files under DIR as a layer, reproducibly
  tar --sort=name --numeric-owner --xattrs --xattrs-exclude='trusted.overlay.*' --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$1" -cf "$2" .
}

# The dependencies' layer, cached by deps_key: -> $DEPS/rootfs (its files) and $DEPS/layout (an OCI
# layout holding that one layer).
build_deps() {
  local key; key=$(deps_key)
  DEPS=$CACHE/deps-${key:0:16}
  if [[ -d $DEPS/layout && -z ${MLP_IMAGE_FORCE:-} ]]; then log "dependencies' layer cached: $DEPS"; return; fi
  build_base
  rm -rf "$DEPS.tmp" && mkdir -p "$DEPS.tmp" "$CACHE/uv-cache"
  log "copying the base root fs"
  cp -a "$BASE/rootfs" "$DEPS.tmp/rootfs"
  install_phase "$DEPS.tmp/rootfs" deps
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$DEPS.tmp/rootfs/etc/hosts"
  [[ ! -s $DEPS.tmp/rootfs/etc/machine-id ]] || : >"$DEPS.tmp/rootfs/etc/machine-id"
  log "dependencies' root fs: $(du -sh "$DEPS.tmp/rootfs" | cut -f1); packing their layer"
  layer_tar "$DEPS.tmp/rootfs" "$DEPS.tmp/layer.tar"
  umoci init --layout "$DEPS.tmp/layout"
  umoci new --image "$DEPS.tmp/layout:deps"
  log "umoci raw add-layer (gzip)"
  umoci raw add-layer --image "$DEPS.tmp/layout:deps" \
    --history.created_by "images/mlpipeline/install.sh PHASE=deps (hack/build-image.sh)" "$DEPS.tmp/layer.tar"
  rm -f "$DEPS.tmp/layer.tar"
  rm -rf "$DEPS" && mv "$DEPS.tmp" "$DEPS"
  find "$CACHE" -maxdepth 1 -name 'deps-*' ! -name "deps-${key:0:16}" -exec rm -rf {} +
}

build() {
  mkdir -p "$CACHE" "$OUT"
  exec 9>"$CACHE/.lock"
  flock 9
  local version key tag ctag name
  version=$(sed -n 's/^version *= *"\(.*\)"$/\1/p' pyproject.toml | head -1)
  [[ -n $version ]] || die "no version in pyproject.toml"
  key=$(content_key)
  tag=$version ctag=$version-${key:0:12}
  name=mlpipeline-$ctag.tar
  local result=$CACHE/out-${key:0:16}
  if [[ -f $result/$name && -z ${MLP_IMAGE_FORCE:-} ]]; then
    log "cached: $REPO:$ctag (inputs unchanged)"
  else
    local config; config=$(dockerfile_config) || die "cannot read the image config from $RECIPE/Dockerfile"
    build_deps
    local work=$CACHE/work
    rm -rf "$work" && mkdir -p "$work"/{upper,ovl,rootfs} "$CACHE/uv-cache"
    # The project's layer is what its install changes over the dependencies' root fs: an overlay's
    # upper directory, in a mount namespace of its own.
    log "the project over the dependencies (overlay)"
    unshare --mount --propagation private -- bash -euc '
      mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4"
      shift 4; "$@"' bash "$DEPS/rootfs" "$work/upper" "$work/ovl" "$work/rootfs" \
      "$SELF" install-phase "$work/rootfs" project
    if find "$work/upper" -type c -print -quit | grep -q .; then
      die "the project's install removed files of the dependencies' layer (whiteouts in $work/upper)"
    fi
    local rootfs_bytes
    rootfs_bytes=$(( $(du -sb "$DEPS/rootfs" | cut -f1) + $(du -sb "$work/upper" | cut -f1) ))
    layer_tar "$work/upper" "$work/layer.tar"
    log "project layer: $(( $(stat -c %s "$work/layer.tar") / 1024 )) KiB"
    local layout=$work/layout
    cp -a "$DEPS/layout" "$layout"
    umoci tag --image "$layout:deps" "$tag"
    umoci rm --image "$layout:deps"
    umoci raw add-layer --image "$layout:$tag" --history.created_by "images/mlpipeline/install.sh PHASE=project (hack/build-image.sh)" \
      "$work/layer.tar"
    log "layer added; writing the config"
    local created; created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    local revision; revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
    local -a args=(--os linux --architecture amd64 --created "$created" --author "hack/build-image.sh"
      --config.label "org.opencontainers.image.version=$version"
      --config.label "org.opencontainers.image.revision=$revision"
      --config.label "org.opencontainers.image.created=$created"
      --config.label "dev.mlpipeline.image.inputs=$key")
    local item
    while IFS= read -r item; do args+=("$item"); done < <("$PYTHON" -c '
import json, sys
c = json.loads(sys.argv[1])
for e in c["env"]: print("--config.env"); print(e)
for l in c["label"]: print("--config.label"); print(l)
if c["user"]: print("--config.user"); print(c["user"])
if c["workdir"]: print("--config.workingdir"); print(c["workdir"])
if c["entrypoint"] is not None:
    if c["entrypoint"]:
        for a in c["entrypoint"]: print("--config.entrypoint"); print(a)
    else: print("--clear=config.entrypoint")
for a in c["cmd"] or []: print("--config.cmd"); print(a)
' "$config")
    umoci config --image "$layout:$tag" --history.created_by "hack/build-image.sh: config from $RECIPE/Dockerfile" \
      "${args[@]}"
    umoci tag --image "$layout:$tag" "$ctag"
    umoci gc --layout "$layout"
    log "config written; archiving the layout"
    rm -rf "$result.tmp" && mkdir -p "$result.tmp"
    tar --sort=name --numeric-owner -C "$layout" -cf "$result.tmp/$name" oci-layout index.json blobs
    echo "$rootfs_bytes" >"$result.tmp/rootfs-bytes"
    rm -rf "$result" && mv "$result.tmp" "$result"
    rm -rf "$work"
    # Keep the three newest images.
    ls -dt "$CACHE"/out-* 2>/dev/null | tail -n +4 | xargs -r rm -rf
  fi
  touch "$result"
  rm -f "$OUT"/mlpipeline-*.tar
  ln -f "$result/$name" "$OUT/$name" 2>/dev/null || cp "$result/$name" "$OUT/$name"
  cat >"$OUT/image.env" <<EOF
IMAGE_REPO=$REPO
IMAGE=$REPO:$tag
IMAGE_CONTENT=$REPO:$ctag
IMAGE_ARCHIVE=$OUT/$name
EOF
  log "image $REPO:$tag and $REPO:$ctag"
  log "archive $OUT/$name: $(( $(stat -c %s "$OUT/$name") / 1048576 )) MiB; uncompressed root fs: $(( $(cat "$result/rootfs-bytes") / 1048576 )) MiB"
  log "import: ctr -n k8s.io images import --base-name $REPO $OUT/$name"
  echo "$OUT/$name"
}

# Unpacks the built archive's layer (not the build's work tree) and runs the image's commands in it
# as uid 10001 with the image's environment.
check() {
  # shellcheck disable=SC1091
  source "$OUT/image.env"
  local archive=${1:-$IMAGE_ARCHIVE}
  t=$(mktemp -d "${TMPDIR:-/tmp}/mlp-image-check.XXXXXX")
  trap 'rm -rf "$t"' EXIT
  mkdir -p "$t/layout" "$t/rootfs"
  tar -xf "$archive" -C "$t/layout"
  log "umoci stat:"
  umoci stat --image "$t/layout:${IMAGE#*:}" >&2
  local manifest config
  manifest=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"].split(":")[1])' "$t/layout/index.json")
  config=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["digest"].split(":")[1])' "$t/layout/blobs/sha256/$manifest")
  log "config: $("$PYTHON" -c 'import json,sys; c=json.load(open(sys.argv[1]))["config"]; print(json.dumps({k: c.get(k) for k in ("User","Env","WorkingDir","Entrypoint","Cmd")}))' "$t/layout/blobs/sha256/$config")"
  log "refs: $("$PYTHON" -c 'import json,sys; print([m["annotations"]["org.opencontainers.image.ref.name"] for m in json.load(open(sys.argv[1]))["manifests"]])' "$t/layout/index.json")"
  local layer
  for layer in $("$PYTHON" -c 'import json,sys; print(" ".join(l["digest"].split(":")[1] for l in json.load(open(sys.argv[1]))["layers"]))' "$t/layout/blobs/sha256/$manifest"); do
    tar -xzf "$t/layout/blobs/sha256/$layer" -C "$t/rootfs" --numeric-owner
  done
  local -a env
  mapfile -t env < <("$PYTHON" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["config"]["Env"]))' "$t/layout/blobs/sha256/$config")
  cp /etc/resolv.conf "$t/rootfs/etc/resolv.conf"
  run() { log "as 10001: $*"; CHROOT_USER=10001:10001 in_chroot "$t/rootfs" /usr/bin/env -i "${env[@]}" \
    sh -c 'cd "$HOME" && exec "$@"' sh "$@"; }
  run id
  run python -c 'import mlpipeline, ray, bentoml, sklearn, kopf; print("imports ok", ray.__version__, bentoml.__version__)'
  run python -m mlpipeline.steps --help
  run mlpipeline --help
  run bentoml --version
  run sh -c 'touch "$HOME/w" "$BENTOML_HOME/w" && echo "HOME and BENTOML_HOME writable"'
  log "check passed"
}

case ${1:-build} in
  build) build ;;
  install-phase) shift; install_phase "$@" ;;  # build's own use: inside its overlay's namespace
  check) shift; check "$@" ;;
  *) die "usage: $0 [build|check [ARCHIVE]]" ;;
esac
