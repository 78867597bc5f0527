# shellcheck shell=bash
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every staging module (k8s.io/api,
# k8s.io/client-go, ...) with ./staging/... A throw-away wrapper module mirrors those replaces with
# the published staging versions v0.<minor>.<patch>.
# Sourced by hack/build-control-plane.sh and hack/build-node.sh; uses their K8S_VERSION and log.
# build_k8s OUT_DIR CMD...  builds k8s.io/kubernetes/cmd/CMD for each CMD into OUT_DIR.
build_k8s() {
  local out=$1; shift
  local cmd have=1
  for cmd in "$@"; do [[ -x $out/$cmd ]] || have=0; done
  if (( have )); then log "$* v$K8S_VERSION cached in $out"; return; fi
  local minor=${K8S_VERSION#*.}; minor=${minor%%.*}
  local staging=v0.${K8S_VERSION#*.}
  local work; work=$(mktemp -d)
  local pkgs=(); for cmd in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done
  log "building $* v$K8S_VERSION (staging $staging) in $work"
  (
    cd "$work"
    go mod init mlpipeline.local/k8s-wrapper >/dev/null 2>&1
    local gomod; gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" | awk '{print $1}' | sort -u | while read -r mod; do
      go mod edit -replace "$mod=$mod@$staging"
    done
    go get "k8s.io/kubernetes@v$K8S_VERSION" >/dev/null 2>&1 || true
    go get "${pkgs[@]/%/@v$K8S_VERSION}"
    local pkg=k8s.io/component-base/version
    local ldflags="-s -w -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    go build -pgo=off -trimpath -ldflags "$ldflags" -o "$out.tmp/" "${pkgs[@]}"
  )
  rm -rf "$out" && mv "$out.tmp" "$out" && rm -rf "$work"
}
