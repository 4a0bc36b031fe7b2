#!/usr/bin/env bash
# A Tempest cluster on this machine, for development: Nimbus and two supervisors, all on
# loopback, each with its own data dir, log and pid file under $TEMPEST_HOME.
#
#   deploy/local-cluster.sh start    build (unless TEMPEST_BIN_DIR is set) and start what is not
#                                    running yet; wait until Nimbus answers
#   deploy/local-cluster.sh status   which daemons and workers run, and the topologies
#   deploy/local-cluster.sh stop     stop the supervisors, their workers, then Nimbus
#
# Environment:
#   TEMPEST_HOME     state, logs and pids (default ./tempest-local):
#                      nimbus/ supervisor-1/ supervisor-2/   data dirs
#                      logs/                                 daemon logs (worker logs are in
#                                                            supervisor-N/logs/)
#                      pids/                                 daemon pid files
#                      secret                                the cluster secret (generated once)
#   TEMPEST_BIN_DIR  directory holding the nimbus, supervisor and tempest binaries; if unset they
#                    are built with cargo build --release.
#   RUST_LOG         daemons' log filter (default info).
#
# Ports: Nimbus 127.0.0.1:6627; supervisor-1 slots 6700,6701 and worker-log server 8000;
# supervisor-2 slots 6710,6711 and worker-log server 8010.
#
# Nimbus keeps its topologies across stop/start (as a real cluster does); to start from
# scratch, stop and remove $TEMPEST_HOME.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly NIMBUS_ADDR="127.0.0.1:6627"
readonly NIMBUS_URL="http://${NIMBUS_ADDR}"
readonly SUPERVISORS=(supervisor-1 supervisor-2)
readonly START_DEADLINE_SECS=30
readonly STOP_DEADLINE_SECS=15

slots_of() {
    case "$1" in
        supervisor-1) echo "6700,6701" ;;
        supervisor-2) echo "6710,6711" ;;
        *) die "unknown daemon $1" ;;
    esac
}

# The worker-log HTTP server address of supervisor $1.
http_listen_of() {
    case "$1" in
        supervisor-1) echo "127.0.0.1:8000" ;;
        supervisor-2) echo "127.0.0.1:8010" ;;
        *) die "unknown daemon $1" ;;
    esac
}

die() {
    echo "local-cluster: $*" >&2
    exit 1
}

say() {
    echo "local-cluster: $*"
}

# $TEMPEST_HOME as an absolute path (not created here), fixed once so pid files and data dirs
# do not depend on the current directory.
TEMPEST_HOME="${TEMPEST_HOME:-./tempest-local}"
case "$TEMPEST_HOME" in
    /*) HOME_DIR="$TEMPEST_HOME" ;;
    *) HOME_DIR="$PWD/${TEMPEST_HOME#./}" ;;
esac
readonly HOME_DIR

# Where the binaries are: $TEMPEST_BIN_DIR, else cargo's release directory.
bin_dir() {
    if [[ -n "${TEMPEST_BIN_DIR:-}" ]]; then
        echo "$TEMPEST_BIN_DIR"
    else
        echo "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release"
    fi
}

build() {
    if [[ -n "${TEMPEST_BIN_DIR:-}" ]]; then
        say "using binaries in $TEMPEST_BIN_DIR"
    else
        say "building nimbus, supervisor and tempest (cargo build --release)"
        cargo build --release --manifest-path "$REPO_ROOT/Cargo.toml" \
            -p nimbus -p supervisor -p tempest-cli
    fi
    local bin
    for bin in nimbus supervisor tempest; do
        [[ -x "$(bin_dir)/$bin" ]] || die "$(bin_dir)/$bin is missing or not executable"
    done
}

# The cluster secret, generated on first use (readable only by this user).
secret() {
    local file
    file="$HOME_DIR/secret"
    if [[ ! -s "$file" ]]; then
        (
            umask 077
            mkdir -p "$(dirname "$file")"
            od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$file.tmp"
            mv "$file.tmp" "$file"
        )
    fi
    cat "$file"
}

data_dir_of() {
    echo "$HOME_DIR/$1"
}

pid_file_of() {
    echo "$HOME_DIR/pids/$1.pid"
}

# The command line of a live process (arguments separated by spaces), or nothing.
args_of() {
    if [[ -r "/proc/$1/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
    else
        ps -ww -o args= -p "$1" 2>/dev/null || true
    fi
}

# The pid of daemon $1 if it runs: its pid file names a live process started with its data
# dir (so a stale pid file whose pid was reused by something else does not count).
running_pid() {
    local name="$1" pid_file pid
    pid_file="$(pid_file_of "$name")"
    [[ -s "$pid_file" ]] || return 1
    pid="$(cat "$pid_file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    case " $(args_of "$pid") " in
        *" --data-dir $(data_dir_of "$name") "*)
            echo "$pid"
            return 0
            ;;
    esac
    return 1
}

# Starts daemon $1 (its binary is $2, its flags follow) in its own session, so a Ctrl-C in
# this terminal does not reach it; the secret goes in its environment, never on its command line.
launch() {
    local name="$1" binary="$2" home log pid cluster_secret
    shift 2
    home="$HOME_DIR"
    cluster_secret="$(secret)"
    log="$home/logs/$name.log"
    mkdir -p "$home/logs" "$home/pids" "$(data_dir_of "$name")"
    local detach=()
    if command -v setsid >/dev/null; then
        detach=(setsid)
    fi
    (
        cd "$home"
        export TEMPEST_SECRET="$cluster_secret"
        RUST_LOG="${RUST_LOG:-info}" exec ${detach[@]+"${detach[@]}"} nohup "$binary" "$@" \
            >>"$log" 2>&1 </dev/null
    ) &
    pid=$!
    echo "$pid" >"$(pid_file_of "$name")"
    say "started $name (pid $pid), log $log"
}

start_nimbus() {
    local pid
    if pid="$(running_pid nimbus)"; then
        say "nimbus already running (pid $pid)"
        return
    fi
    launch nimbus "$(bin_dir)/nimbus" \
        --data-dir "$(data_dir_of nimbus)" --listen "$NIMBUS_ADDR"
}

start_supervisor() {
    local name="$1" pid
    if pid="$(running_pid "$name")"; then
        say "$name already running (pid $pid)"
        return
    fi
    launch "$name" "$(bin_dir)/supervisor" \
        --data-dir "$(data_dir_of "$name")" --nimbus "$NIMBUS_URL" --host 127.0.0.1 \
        --slots "$(slots_of "$name")" --id "local-$name" \
        --http-listen "$(http_listen_of "$name")"
}

# GET $1 from Nimbus with the secret; the header is read from stdin so the secret is not on
# curl's command line.
nimbus_get() {
    printf 'x-tempest-secret: %s\n' "$(secret)" |
        curl --silent --show-error --fail --max-time 2 --header @- "$NIMBUS_URL$1"
}

# The last lines of daemon $1's log, indented.
log_tail() {
    local log
    log="$HOME_DIR/logs/$1.log"
    [[ -f "$log" ]] && tail -n 15 "$log" | sed 's/^/    /' >&2
    return 0
}

# Waits until Nimbus answers, then (briefly) until both supervisors have registered.
wait_for_cluster() {
    local deadline=$((SECONDS + START_DEADLINE_SECS)) name summary=""
    until summary="$(nimbus_get /api/v1/cluster/summary 2>/dev/null)"; do
        if ! running_pid nimbus >/dev/null; then
            echo "local-cluster: nimbus exited; the end of its log:" >&2
            log_tail nimbus
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "local-cluster: Nimbus did not answer at $NIMBUS_URL within" \
                "${START_DEADLINE_SECS}s; the end of its log:" >&2
            log_tail nimbus
            exit 1
        fi
        sleep 0.2
    done
    say "Nimbus answers at $NIMBUS_URL"
    # Four slots in total once both supervisors have heartbeated (they do every 2 s).
    until [[ "$summary" =~ \"slotsTotal\"[[:space:]]*:[[:space:]]*([0-9]+) ]] &&
        ((BASH_REMATCH[1] >= 4)); do
        for name in "${SUPERVISORS[@]}"; do
            if ! running_pid "$name" >/dev/null; then
                echo "local-cluster: $name exited; the end of its log:" >&2
                log_tail "$name"
                exit 1
            fi
        done
        if ((SECONDS >= deadline)); then
            say "warning: the supervisors have not registered with Nimbus yet; see" \
                "$HOME_DIR/logs/supervisor-*.log"
            return
        fi
        sleep 0.5
        summary="$(nimbus_get /api/v1/cluster/summary 2>/dev/null || true)"
    done
    say "both supervisors registered (4 slots)"
}

next_steps() {
    local home tempest target="${CARGO_TARGET_DIR:-target}"
    home="$HOME_DIR"
    tempest="$(bin_dir)/tempest"
    [[ -n "${TEMPEST_BIN_DIR:-}" || -n "${CARGO_TARGET_DIR:-}" ]] ||
        tempest="target/release/tempest"
    cat <<EOF

Tempest is running: Nimbus $NIMBUS_URL, supervisors with slots 6700,6701 and 6710,6711.

In your shell:
  export TEMPEST_SECRET=\$(cat $home/secret)
  export TEMPEST_NIMBUS=$NIMBUS_URL

Submit the word count example (from $REPO_ROOT):
  cargo build --release --example word_count && $tempest submit $target/release/examples/word_count --name wc --workers 2
  $tempest list
  $tempest describe wc
  $tempest kill wc --wait 5

Logs: $home/logs/ (daemons), $home/supervisor-*/logs/ (workers; also over HTTP through
  Nimbus, GET /api/v1/topology/<name>/worker-log/127.0.0.1/<port>, see docs/design/rest-api.md)
Metrics: curl -H "Authorization: Bearer \$TEMPEST_SECRET" $NIMBUS_URL/metrics
Stop: $0 stop
EOF
}

cmd_start() {
    build
    secret >/dev/null
    start_nimbus
    local name
    for name in "${SUPERVISORS[@]}"; do
        start_supervisor "$name"
    done
    wait_for_cluster
    next_steps
}

# The workers recorded in the supervisors' data dirs that still run in worker mode, as
# "pid port topology" lines.
recorded_workers() {
    local name record pid port topology
    for name in "${SUPERVISORS[@]}"; do
        for record in "$(data_dir_of "$name")"/workers/*/worker.json; do
            [[ -f "$record" ]] || continue
            pid="$(json_number pid "$record")"
            port="$(json_number port "$record")"
            topology="$(json_string topology "$record")"
            [[ -n "$pid" && -n "$port" ]] || continue
            case " $(args_of "$pid") " in
                *" worker "*"--port $port "*) echo "$pid $port ${topology:-?}" ;;
            esac
        done
    done
}

# The integer value of key $1 in the JSON object in file $2 (no jq needed for worker.json).
json_number() {
    sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p" "$2" | head -n 1
}

# True while target $1 ("pid", or "-pgid" for a process group) has a process that is not a
# zombie (an exited daemon whose parent has not reaped it yet counts as gone).
alive() {
    if [[ "$1" == -* ]]; then
        ps -eo pgid=,stat= 2>/dev/null |
            awk -v g="${1#-}" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
    else
        local stat
        stat="$(ps -o stat= -p "$1" 2>/dev/null || true)"
        [[ -n "$stat" && "$stat" != Z* ]]
    fi
}

# The value of string key $1 in the JSON object in file $2 (topology names need no escapes).
json_string() {
    sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$2" | head -n 1
}

# Sends SIGTERM to each target ("pid" or "-pgid"), waits for them to go, then SIGKILLs the rest.
terminate() {
    local what="$1" target deadline
    shift
    [[ $# -gt 0 ]] || return 0
    kill -TERM -- "$@" 2>/dev/null || true
    deadline=$((SECONDS + STOP_DEADLINE_SECS))
    for target in "$@"; do
        while alive "$target"; do
            if ((SECONDS >= deadline)); then
                say "$what ${target#-} did not stop within ${STOP_DEADLINE_SECS}s; killing it"
                kill -KILL -- "$target" 2>/dev/null || true
                sleep 0.2
                break
            fi
            sleep 0.1
        done
    done
}

cmd_stop() {
    local name pid pids=() groups=()
    # Supervisors first: a supervisor that still ran would restart the workers stopped below.
    # Their workers keep running (they are in their own process groups), and are stopped next.
    for name in "${SUPERVISORS[@]}"; do
        if pid="$(running_pid "$name")"; then
            say "stopping $name (pid $pid)"
            pids+=("$pid")
        fi
    done
    terminate supervisor "${pids[@]+"${pids[@]}"}"
    # Each worker leads its own process group: signal the group, so anything it started goes too.
    while read -r pid _; do
        [[ -n "$pid" ]] || continue
        say "stopping worker process group $pid"
        groups+=("-$pid")
    done < <(recorded_workers)
    terminate "worker process group" "${groups[@]+"${groups[@]}"}"
    if pid="$(running_pid nimbus)"; then
        say "stopping nimbus (pid $pid)"
        terminate nimbus "$pid"
    fi
    for name in nimbus "${SUPERVISORS[@]}"; do
        rm -f "$(pid_file_of "$name")"
    done
    say "stopped"
}

cmd_status() {
    local name pid port topology code=0 home tempest
    home="$HOME_DIR"
    for name in nimbus "${SUPERVISORS[@]}"; do
        if pid="$(running_pid "$name")"; then
            printf '%-13s running (pid %s)\n' "$name" "$pid"
        else
            printf '%-13s stopped\n' "$name"
            code=3
        fi
    done
    local workers
    workers="$(recorded_workers)"
    if [[ -n "$workers" ]]; then
        while read -r pid port topology; do
            printf '%-13s running (pid %s, slot %s, topology %s)\n' worker "$pid" "$port" \
                "$topology"
        done <<<"$workers"
    fi
    echo
    tempest="$(bin_dir)/tempest"
    if ! running_pid nimbus >/dev/null; then
        echo "Nimbus is not running: $0 start"
    elif [[ ! -x "$tempest" ]]; then
        echo "($tempest is not built; run $0 start)"
    else
        TEMPEST_SECRET="$(secret)" "$tempest" --nimbus "$NIMBUS_URL" list || true
    fi
    cat <<EOF

To use the CLI against this cluster:
  export TEMPEST_SECRET=\$(cat $home/secret)
  export TEMPEST_NIMBUS=$NIMBUS_URL
EOF
    # 3 (LSB "not running") unless every daemon runs.
    return "$code"
}

main() {
    case "${1:-}" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        *)
            echo "usage: $0 start|stop|status" >&2
            exit 2
            ;;
    esac
}

main "$@"
