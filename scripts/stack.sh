# shellcheck shell=bash
# Local embedded stack: Temporal dev server + moto S3 server, no Docker.
#
# Source it (bash only), after scripts/install-tools.sh has run:
#
#   source "$ROOT/scripts/stack.sh"
#   stack_trap_cleanup                      # = trap stack_stop_all EXIT, INT/TERM exit
#   dir="$ROOT/.stack/demo"; mkdir -p "$dir"
#   tport=$(stack_free_port); sport=$(stack_free_port)
#   stack_start_temporal "$dir" "$tport"    # sets STACK_TEMPORAL_ADDRESS=127.0.0.1:$tport
#   stack_start_s3 "$dir" "$sport"          # sets STACK_S3_ENDPOINT=http://127.0.0.1:$sport
#   ...
#   stack_stop_all                          # also run by the trap; safe to call twice
#
# Call the stack_start_* functions directly, never inside $(...): a subshell
# would lose the record of the started process.
# bash runs a TERM trap only once the current foreground command has ended; a
# script that must stop promptly on `kill` runs long steps as `cmd & wait $!`.
# (Ctrl-C in a terminal reaches the whole foreground group, so it is prompt.)
#
# Tunables (env): STACK_TOOLS_BIN (default <repo>/.tools/bin),
#   STACK_START_TIMEOUT (s, default 60), STACK_STOP_TIMEOUT (s, default 5),
#   STACK_TEMPORAL_LOG_LEVEL (default warn).

_STACK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${STACK_TOOLS_BIN:=$_STACK_ROOT/.tools/bin}"
: "${STACK_START_TIMEOUT:=60}"
: "${STACK_STOP_TIMEOUT:=5}"
: "${STACK_TEMPORAL_LOG_LEVEL:=warn}"

# Parallel arrays: pid, name, pidfile of each process started here.
if [[ -z "${_STACK_PIDS+x}" ]]; then
  _STACK_OWNER=$BASHPID
  _STACK_PIDS=()
  _STACK_NAMES=()
  _STACK_PIDFILES=()
fi

_stack_err() { echo "stack: ERROR: $*" >&2; }
_stack_info() { echo "stack: $*" >&2; }

# stack_free_port: print a TCP port on 127.0.0.1 that is free right now.
# Linux hands recently closed ephemeral ports back out to bind(:0) quickly, and
# the Temporal dev server picks its HTTP/metrics/internal ports that way, so a
# plain bind-and-close port can collide with them ("bind: address already in
# use"). As the Temporal CLI itself does, leave the port in TIME_WAIT (server
# side closes first): bind(:0) then skips it for ~60 s, while an explicit bind
# with SO_REUSEADDR (Go, Python socketserver, tokio all set it) still works.
stack_free_port() {
  python3 -c 'import socket
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 0))
l.listen(1)
port = l.getsockname()[1]
c = socket.create_connection(("127.0.0.1", port))
s, _ = l.accept()
s.close()
c.close()
l.close()
print(port)'
}

# _stack_port_free PORT: true if 127.0.0.1:PORT can be bound (nothing listens;
# TIME_WAIT leftovers do not count, hence SO_REUSEADDR).
_stack_port_free() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

# _stack_kill_stale PIDFILE DIR: a pid file left by a run that died without
# cleanup: kill that process if it is still ours (its command line names DIR,
# or its environment has STACK_DIR=DIR).
_stack_kill_stale() {
  local pidfile=$1 dir=$2 pid
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  rm -f "$pidfile"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  if kill -0 "$pid" 2>/dev/null && { tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir" \
       || tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF -- "STACK_DIR=$dir"; }; then
    _stack_info "killing stale process $pid from $pidfile"
    _stack_terminate "$pid"
  fi
}

# _stack_alive PID: true if PID exists and is not a zombie. No subshells here
# or below: bash may run an EXIT trap again inside a $(...) forked from the
# trap handler itself.
_stack_alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  read -r st 2>/dev/null <"/proc/$1/stat" || return 1
  st=${st##*) }
  [[ "${st%% *}" != Z ]]
}

# _stack_terminate PID: TERM, wait up to STACK_STOP_TIMEOUT s, then KILL.
_stack_terminate() {
  local pid=$1 i
  if _stack_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STACK_STOP_TIMEOUT * 10; i++)); do
      _stack_alive "$pid" || break
      sleep 0.1
    done
    if _stack_alive "$pid"; then
      _stack_info "pid $pid ignored TERM for ${STACK_STOP_TIMEOUT}s, sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true   # reap it if it is our child
  return 0
}

_stack_record() {  # NAME PID PIDFILE
  _STACK_OWNER=$BASHPID
  _STACK_NAMES+=("$1")
  _STACK_PIDS+=("$2")
  _STACK_PIDFILES+=("$3")
  if [[ -n "$3" ]]; then echo "$2" >"$3"; fi
}

# _stack_wait NAME PID LOG CHECK-COMMAND...: poll CHECK until it succeeds,
# the process dies, or STACK_START_TIMEOUT passes.
_stack_wait() {
  local name=$1 pid=$2 log=$3
  shift 3
  local deadline=$((SECONDS + STACK_START_TIMEOUT))
  while true; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null
      _stack_err "$name (pid $pid) exited during startup (status $?); last lines of $log:"
      tail -n 8 "$log" | cut -c1-400 >&2 || true
      return 1
    fi
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      _stack_err "$name (pid $pid) not ready after ${STACK_START_TIMEOUT}s; last lines of $log:"
      tail -n 8 "$log" | cut -c1-400 >&2 || true
      return 1
    fi
    sleep 0.25
  done
}

_stack_temporal_healthy() {  # ADDRESS
  local out
  out="$("$STACK_TOOLS_BIN/temporal" operator cluster health --address "$1" --command-timeout 3s 2>/dev/null)" || return 1
  [[ "$out" == *SERVING* && "$out" != *NOT_SERVING* ]] || return 1
  # The default namespace must be usable too, not just the frontend.
  "$STACK_TOOLS_BIN/temporal" workflow list --address "$1" --namespace default --limit 1 --command-timeout 3s >/dev/null 2>&1
}

# stack_start_temporal DIR PORT: Temporal dev server (SQLite DIR/temporal.db,
# log DIR/temporal.log, pid DIR/temporal.pid) on 127.0.0.1:PORT, headless.
# Returns once the frontend answers and the "default" namespace works.
stack_start_temporal() {
  if [[ $# -ne 2 ]]; then _stack_err "usage: stack_start_temporal DIR PORT"; return 2; fi
  local dir=$1 port=$2 bin="$STACK_TOOLS_BIN/temporal"
  [[ -x "$bin" ]] || { _stack_err "$bin not found: run scripts/install-tools.sh"; return 1; }
  mkdir -p "$dir" && dir="$(cd "$dir" && pwd)" || { _stack_err "cannot create $dir"; return 1; }
  _stack_kill_stale "$dir/temporal.pid" "$dir"
  if ! _stack_port_free "$port"; then
    _stack_err "port 127.0.0.1:$port already in use; not starting Temporal"
    return 1
  fi
  local log="$dir/temporal.log" attempt pid off
  for attempt in 1 2 3; do
    off=$(stat -c %s "$log" 2>/dev/null || echo 0)
    echo "=== $(date -u +%FT%TZ) start-dev port $port (attempt $attempt)" >>"$log"
    "$bin" server start-dev --headless --ip 127.0.0.1 --port "$port" \
      --db-filename "$dir/temporal.db" --log-level "$STACK_TEMPORAL_LOG_LEVEL" \
      </dev/null >>"$log" 2>&1 &
    pid=$!
    _stack_record temporal "$pid" "$dir/temporal.pid"
    if _stack_wait temporal "$pid" "$log" _stack_temporal_healthy "127.0.0.1:$port"; then
      break
    fi
    # The dev server picks its other ports at random; if one of them collided
    # with PORT (or another listener), it dies at once: try again.
    if ((attempt < 3)) && ! kill -0 "$pid" 2>/dev/null \
       && tail -c +"$((off + 1))" "$log" | grep -q 'address already in use' \
       && _stack_port_free "$port"; then
      _stack_info "temporal hit a port collision at startup; retrying"
      sleep 0.5
      continue
    fi
    _stack_terminate "$pid"
    return 1
  done
  STACK_TEMPORAL_ADDRESS="127.0.0.1:$port"
  export STACK_TEMPORAL_ADDRESS
  _stack_info "temporal up at $STACK_TEMPORAL_ADDRESS (pid $pid, log $log)"
}

_stack_http_ok() {  # URL
  python3 - "$1" <<'PY'
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status < 500 else 1)
except Exception:
    sys.exit(1)
PY
}

# stack_start_s3 DIR PORT: moto server (in-memory, S3 and other AWS APIs) on
# 127.0.0.1:PORT, log DIR/s3.log, pid DIR/s3.pid. Returns once it answers HTTP.
stack_start_s3() {
  if [[ $# -ne 2 ]]; then _stack_err "usage: stack_start_s3 DIR PORT"; return 2; fi
  local dir=$1 port=$2 bin="$STACK_TOOLS_BIN/moto_server"
  [[ -x "$bin" ]] || { _stack_err "$bin not found: run scripts/install-tools.sh"; return 1; }
  mkdir -p "$dir" && dir="$(cd "$dir" && pwd)" || { _stack_err "cannot create $dir"; return 1; }
  _stack_kill_stale "$dir/s3.pid" "$dir"
  if ! _stack_port_free "$port"; then
    _stack_err "port 127.0.0.1:$port already in use; not starting moto"
    return 1
  fi
  local log="$dir/s3.log"
  echo "=== $(date -u +%FT%TZ) moto_server port $port" >>"$log"
  # The dir argument is passed via env only so _stack_kill_stale can find it.
  STACK_DIR="$dir" PYTHONUNBUFFERED=1 "$bin" -H 127.0.0.1 -p "$port" \
    </dev/null >>"$log" 2>&1 &
  local pid=$!
  _stack_record s3 "$pid" "$dir/s3.pid"
  if ! _stack_wait s3 "$pid" "$log" _stack_http_ok "http://127.0.0.1:$port/moto-api/data.json"; then
    return 1
  fi
  STACK_S3_ENDPOINT="http://127.0.0.1:$port"
  export STACK_S3_ENDPOINT
  _stack_info "s3 (moto) up at $STACK_S3_ENDPOINT (pid $pid, log $log)"
}

# stack_stop_all: stop everything started above, newest first. Idempotent;
# always returns 0 so it is safe under `set -e` and in traps.
stack_stop_all() {
  local i
  # Only the shell that started the processes stops them, not a subshell that
  # inherited the list or the trap (e.g. a just-forked `cmd &` child that gets
  # the TERM before it has exec'd would otherwise run the trap too).
  [[ "$BASHPID" == "$_STACK_OWNER" ]] || return 0
  for ((i = ${#_STACK_PIDS[@]} - 1; i >= 0; i--)); do
    _stack_terminate "${_STACK_PIDS[i]}"
    rm -f "${_STACK_PIDFILES[i]}"
  done
  _STACK_PIDS=()
  _STACK_NAMES=()
  _STACK_PIDFILES=()
  return 0
}

# stack_trap_cleanup: stop the stack on exit; make INT/TERM actually exit
# (a bare `trap stack_stop_all INT` would run it and then carry on).
stack_trap_cleanup() {
  trap 'stack_stop_all' EXIT
  trap 'stack_stop_all; trap - EXIT; exit 130' INT
  trap 'stack_stop_all; trap - EXIT; exit 143' TERM
}

# stack_track NAME PID: have stack_stop_all stop another process started by the caller
# (the simulator, the worker), newest first like the servers.
stack_track() {
  _stack_record "$1" "$2" ""
}
