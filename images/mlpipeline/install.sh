#!/bin/sh
# The one install recipe of the mlpipeline image. It runs as root inside the image being built:
#   - images/mlpipeline/Dockerfile:  RUN sh install.sh /tmp/src            (on debian:bookworm-slim)
#   - hack/build-image.sh:           chroot ROOTFS sh install.sh /tmp/src  (on a debootstrap bookworm)
# so both ways give the same contents. Argument: the project's source tree (pyproject.toml,
# README.md, operator/); uv builds its wheel there. Needs `uv` (on PATH or in $UV) and PyPI;
# $UV_CACHE_DIR is used when set. The caller removes the source tree and the script afterwards.
#
# PHASE=deps installs everything but the project itself (Debian packages, the venv with the runtime
# dependencies, the user), PHASE=project then the project alone: hack/build-image.sh makes each a
# layer, so that a change of the code rebuilds a layer of a few hundred kilobytes. Unset: both.
#
# The Debian packages are listed once, in APT_PACKAGES below; hack/build-image.sh reads that line
# for `debootstrap --include`, so there the apt step finds everything installed and does nothing.
set -eu

# wget: the readiness and liveness probes KubeRay gives Ray pods run it.
APT_PACKAGES="python3 ca-certificates wget"
VENV=/opt/mlpipeline
APP_USER=mlpipeline
APP_UID=10001
APP_HOME=/home/mlpipeline

src=${1:?usage: install.sh SOURCE_DIR (the project: pyproject.toml, README.md, operator/)}
uv=${UV:-uv}
export DEBIAN_FRONTEND=noninteractive UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1

phase=${PHASE:-all}
[ -n "${UV_CACHE_DIR:-}" ] || export UV_NO_CACHE=1

deps() {
  # 1. Debian packages (python3 is Debian's 3.11: the same interpreter on both ways).
  missing=
  for p in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi

  # 2. The runtime dependencies in a venv (no pip in it: uv installs). Byte-compiled: the venv is
  # root-owned and read-only to the user, so without .pyc every pod start would compile
  # ray/bentoml/sklearn again. EXTRAS=deep adds PyTorch (with its CUDA libraries, about 5 GB) and
  # XGBoost: the image variant for the torch_* and xgboost families.
  "$uv" venv --quiet --python /usr/bin/python3 "$VENV"
  "$uv" pip install --quiet --python "$VENV/bin/python" --compile-bytecode -r "$src/pyproject.toml" \
    ${EXTRAS:+--extra "$EXTRAS"}

  # 3. The non-root user, its writable HOME and BENTOML_HOME.
  getent group "$APP_USER" >/dev/null || groupadd --gid "$APP_UID" "$APP_USER"
  getent passwd "$APP_USER" >/dev/null ||
    useradd --uid "$APP_UID" --gid "$APP_UID" --home-dir "$APP_HOME" --shell /bin/sh --no-log-init "$APP_USER"
  mkdir -p "$APP_HOME/bentoml"
  chown -R "$APP_UID:$APP_UID" "$APP_HOME"

  # 4. Smaller: apt lists and caches, logs, docs (copyright files stay), man pages, locales.
  apt-get clean
  rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /etc/*.dpkg-old \
    /var/log/apt /var/log/*.log /var/log/bootstrap.log /usr/share/man /usr/share/info /usr/share/lintian \
    2>/dev/null || true
  find /usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
  find /usr/share/doc -mindepth 1 -type d -empty -delete 2>/dev/null || true
  find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
}

project() {
  # 5. The package itself, its dependencies already there; what is installed, recorded.
  "$uv" pip install --quiet --python "$VENV/bin/python" --no-deps --compile-bytecode "$src"
  "$uv" pip freeze --quiet --python "$VENV/bin/python" >"$VENV/requirements.lock"
  "$VENV/bin/python" -c 'import mlpipeline'
}

case $phase in
  deps) deps ;;
  project) project ;;
  all) deps && project ;;
  *) echo "install.sh: PHASE must be deps, project or all, not $phase" >&2; exit 2 ;;
esac
