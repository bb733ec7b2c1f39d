# bench/lib/peers.sh: the servers benchmarks compare lunet with, and how
# each is started: the TCP echo servers (examples/echo.lua,
# echo_ceiling), the HTTP ones (examples/http_hello.lua and http_api.lua,
# the plain-C http_ceiling, nginx with lua from bench/peers/nginx-lua.conf,
# Go net/http and httprouter from bench/peers/ with GOMAXPROCS=1), and the
# installing of what a peer needs. A peer that cannot be had is skipped
# with one "skipped: PEER: why" line (http_skip); lunet itself never is.

# Installs Debian packages that a bench-only peer needs when they are
# missing (scripts/bootstrap leaves them out): apt-get as root, or through
# passwordless sudo; `apt-get update` only when the install fails without
# it. Returns 1 with INSTALL_WHY set when they cannot be had. Note that on
# a machine whose init starts services, Debian's nginx package starts the
# system nginx when installed; scripts/bench never uses that one.
ensure_packages() {
  local pkg status log=$TMP_DIR/apt.log
  local -a missing=() sudo=()
  INSTALL_WHY=""
  for pkg in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
  done
  ((${#missing[@]} > 0)) || return 0
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      INSTALL_WHY="${missing[*]} not installed (not root, no sudo -n)"
      return 1
    fi
  fi
  echo "scripts/bench: installing ${missing[*]} (apt-get)" >&2
  if ! DEBIAN_FRONTEND=noninteractive timeout 600 "${sudo[@]}" apt-get \
    install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    timeout 300 "${sudo[@]}" apt-get update -qq >>"$log" 2>&1 || true
    if ! DEBIAN_FRONTEND=noninteractive timeout 600 "${sudo[@]}" apt-get \
      install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1
    then
      INSTALL_WHY="apt-get install ${missing[*]} failed: $(tail -1 "$log")"
      return 1
    fi
  fi
}

# The checks every benchmark here makes: two CPUs, taskset, lunet.
# The command line that starts server NAME (lunet or ceiling) on port 0.
echo_server_cmd() {
  local addr=127.0.0.1:0
  if [[ $1 == ceiling ]]; then
    ECHO_CMD=("$CEILING_BIN" "$addr")
  elif [[ $(basename "$LUNET_BIN") == echo_ceiling ]]; then
    ECHO_CMD=("$LUNET_BIN" "$addr")
  else
    ECHO_CMD=("$LUNET_BIN" run examples/echo.lua --listen "echo=$addr")
  fi
}

HTTP_WIDE_CONNS=200   # connections of the c200 scenario (p99)
HTTP_READY_S=10       # for a peer without a "listening" line to answer
HTTP_ROUTE_PATH=/api/bench
HTTP_ROUTE_BODY="Hello, bench!"
HTTP_HELLO_BODY="Hello, World!"
NGINX_MODULE=/usr/lib/nginx/modules/ngx_http_lua_module.so
declare -A HTTP_SKIP=() # peer -> why it is left out
CURL_OPTS=()            # more curl options: https's --cacert

http_skip() {
  local peer=$1 why=$2
  if [[ -z ${HTTP_SKIP[$peer]:-} ]]; then
    echo "skipped: $peer: $why"
    HTTP_SKIP[$peer]=$why
  fi
}

# A loopback port nothing uses now (no socket on it in any state), below
# the ephemeral range so no client grabs it in between.
pick_port() {
  local i port hex
  for ((i = 0; i < 50; i++)); do
    port=$((20000 + RANDOM % 12000))
    printf -v hex ':%04X ' "$port"
    if ! grep -qF "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# nginx with lua: installs nginx-light and libnginx-mod-http-lua if
# missing and checks the module is where Debian puts it.
http_prepare_nginx() {
  if ! ensure_packages nginx-light libnginx-mod-http-lua; then
    http_skip nginx-lua "$INSTALL_WHY"
    return
  fi
  NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
  if [[ ! -x $NGINX_BIN ]]; then
    http_skip nginx-lua "nginx not executable: $NGINX_BIN"
  elif [[ ! -f $NGINX_MODULE ]]; then
    http_skip nginx-lua "no $NGINX_MODULE (libnginx-mod-http-lua)"
  fi
}

# Builds bench/peers/$2.go into $BUILD_DIR/go/$2 offline with GO111MODULE
# off (caches under build-bench/go, nothing in the repo or $HOME); Debian's
# Go libraries are found in /usr/share/gocode. Skips peer $1 on failure.
go_build_peer() {
  local peer=$1 name=$2 src=$ROOT/bench/peers/$2.go
  local bin=$BUILD_DIR/go/$2 log=$TMP_DIR/go-build-$2.log
  if [[ -x $bin && $bin -nt $src ]]; then return; fi
  mkdir -p "$BUILD_DIR/go/cache" "$BUILD_DIR/go/path"
  if ! (cd "$BUILD_DIR/go" && env GOENV=off GOFLAGS= GOPROXY=off \
    GOCACHE="$BUILD_DIR/go/cache" \
    GOPATH="$BUILD_DIR/go/path:/usr/share/gocode" \
    GO111MODULE=off timeout 300 "$GO_BIN" build -o "$bin" "$src") \
    >"$log" 2>&1; then
    http_skip "$peer" "go build failed: $(tail -1 "$log")"
  fi
}

# Go: installs golang-go if missing and builds bench/peers/go_hello.go
# (net/http, standard library only: the peer "go"), and, with Debian's
# golang-github-julienschmidt-httprouter-dev, bench/peers/go_router.go
# (the peer "go-router" of the route scenario).
http_prepare_go() {
  GO_HELLO_BIN=$BUILD_DIR/go/go_hello
  GO_ROUTER_BIN=$BUILD_DIR/go/go_router
  if ! ensure_packages golang-go; then
    http_skip go "$INSTALL_WHY"
    http_skip go-router "$INSTALL_WHY"
    return
  fi
  GO_BIN=$(command -v go || echo /usr/lib/go/bin/go)
  if [[ ! -x $GO_BIN ]]; then
    http_skip go "no go binary after installing golang-go"
    http_skip go-router "no go binary after installing golang-go"
    return
  fi
  go_build_peer go go_hello
  if ! ensure_packages golang-github-julienschmidt-httprouter-dev; then
    http_skip go-router "$INSTALL_WHY"
    return
  fi
  go_build_peer go-router go_router
}

# The plain-C ceiling (bench/http_ceiling.c), built with the tools.
http_prepare_ceiling() {
  HTTP_CEILING_BIN=${HTTP_CEILING_BIN:-$BUILD_DIR/bench/http_ceiling}
  [[ -x $HTTP_CEILING_BIN ]] ||
    http_skip ceiling "not executable: $HTTP_CEILING_BIN"
}

# Starts a server that prints no "listening" line (nginx) pinned to
# SERVER_CPU, and waits until it answers $url; sets SERVER_PID and
# SERVER_LOG. Returns 1 (the process stopped) if it never does.
start_http_peer() {
  local log=$1 url=$2 i
  shift 2
  (cd "$ROOT" && exec taskset -c "$SERVER_CPU" "$@" </dev/null \
    >"$log.out" 2>"$log") &
  SERVER_PID=$!
  SERVER_LOG=$log
  PIDS+=("$SERVER_PID")
  for ((i = 0; i < HTTP_READY_S * 20; i++)); do
    if curl -s "${CURL_OPTS[@]}" -o /dev/null --max-time 1 "$url"; then
      return 0
    fi
    alive "$SERVER_PID" || break
    sleep 0.05
  done
  stop_pid "$SERVER_PID" || true
  forget_pid "$SERVER_PID"
  return 1
}

# Starts nginx from a fresh prefix directory under TMP_DIR, on a free
# port (a few tries, in case one is taken between the check and the
# bind), with bench/peers/$1 (default nginx-lua.conf) as its config and
# $2 (http or https) the scheme it is checked with; @TLS_DIR@ in the
# config becomes TLS_DIR (https's certificate). Returns 1 with the reason
# in HTTP_WHY.
start_nginx() {
  local conf=${1:-nginx-lua.conf} scheme=${2:-http}
  local prefix=$TMP_DIR/nginx port try
  for ((try = 1; try <= 3; try++)); do
    rm -rf "$prefix"
    mkdir -p "$prefix/temp" "$prefix/logs"
    port=$(pick_port) || { HTTP_WHY="no free port"; return 1; }
    sed -e "s/@PORT@/$port/" -e "s|@TLS_DIR@|${TLS_DIR:-}|g" \
      "$ROOT/bench/peers/$conf" >"$prefix/nginx.conf"
    SERVER_ADDR=127.0.0.1:$port
    if start_http_peer "$TMP_DIR/nginx-$try.log" "$scheme://$SERVER_ADDR/" \
      "$NGINX_BIN" -p "$prefix/" -c "$prefix/nginx.conf" -e stderr; then
      return 0
    fi
    HTTP_WHY="did not start: $(tail -1 "$TMP_DIR/nginx-$try.log")"
    grep -q 'Address already in use' "$TMP_DIR/nginx-$try.log" || return 1
  done
  return 1
}

# Starts server $1 for scenario $2 (hello or route); sets SERVER_PID,
# SERVER_ADDR and SERVER_LOG, or returns 1 with the reason in HTTP_WHY.
http_start() {
  local name=$1 scenario=$2 log=$TMP_DIR/http-$1-$2.log
  HTTP_WHY=""
  case $name in
    lunet)
      if [[ $scenario == hello ]]; then
        start_server hello "$log" "$LUNET_BIN" run examples/http_hello.lua \
          --listen hello=127.0.0.1:0
      else
        start_server api "$log" "$LUNET_BIN" run examples/http_api.lua \
          --listen api=127.0.0.1:0
      fi
      ;;
    ceiling) start_server hello "$log" "$HTTP_CEILING_BIN" 127.0.0.1:0 ;;
    nginx-lua) start_nginx || return 1 ;;
    go)
      start_server hello "$log" env GOMAXPROCS=1 "$GO_HELLO_BIN" \
        -addr 127.0.0.1:0
      ;;
    go-router)
      start_server api "$log" env GOMAXPROCS=1 "$GO_ROUTER_BIN" \
        -addr 127.0.0.1:0
      ;;
  esac
}

# The body a server gives for the scenario's path must be lunet's, byte
# for byte; dies for lunet, skips a peer.
http_check_body() {
  local name=$1 url=$2 want=$3 got try
  # A few tries: on a busy machine a first answer can take seconds.
  for ((try = 1; try <= 3; try++)); do
    got=$(curl -s "${CURL_OPTS[@]}" --max-time 5 "$url" || true)
    [[ $got == "$want" ]] && return 0
    alive "$SERVER_PID" || break
  done
  if [[ $name == lunet ]]; then
    die "lunet answered '$got' for $url, expected '$want'" \
      "($(alive "$SERVER_PID" && echo running || echo exited);" \
      "log: $(tail -2 "$SERVER_LOG"))"
  fi
  HTTP_WHY="answers '$got' for $url, expected '$want'"
  return 1
}
