#!/usr/bin/env bash
# A Tempest cluster on this machine, for development: Nimbus and two supervisors, all on
# loopback, each with its own data dir, log and pid file under $TEMPEST_HOME.
#
#   deploy/local-cluster.sh start    build (unless TEMPEST_BIN_DIR is set) and start what is not
#                                    running yet; wait until Nimbus answers
#   deploy/local-cluster.sh start --ha
#                                    the high-availability layout instead: one etcd member and
#                                    three Nimbus hosts with store = "etcd" (built with
#                                    --features etcd, which needs protoc), the supervisors and
#                                    the CLI given the seed list of all three
#   deploy/local-cluster.sh status   which daemons and workers run, and the topologies
#   deploy/local-cluster.sh stop     stop the supervisors, their workers, then Nimbus (and etcd)
#
# Environment:
#   TEMPEST_HOME     state, logs and pids (default ./tempest-local):
#                      nimbus/ supervisor-1/ supervisor-2/   data dirs
#                      logs/                                 daemon logs (worker logs are in
#                                                            supervisor-N/logs/)
#                      pids/                                 daemon pid files
#                      secret                                the cluster secret (generated once)
#                      mode                                  "ha" after start --ha (stop and
#                                                            status read it)
#                      with --ha: etcd/ nimbus-1/ nimbus-2/ nimbus-3/ instead of nimbus/
#   TEMPEST_BIN_DIR  directory holding the nimbus, supervisor and tempest binaries; if unset they
#                    are built with cargo build --release (with --ha: nimbus --features etcd).
#   ETCD_BIN         the etcd binary for --ha (default: etcd on $PATH; Debian: etcd-server).
#   RUST_LOG         daemons' log filter (default info).
#
# Ports: Nimbus 127.0.0.1:6627 (--ha: 6627, 6628, 6629; etcd client 127.0.0.1:23790, peer
# 23800, not etcd's usual 2379/2380, so a system etcd is left alone); supervisor-1 slots
# 6700,6701 and worker-log server 8000; supervisor-2 slots 6710,6711 and worker-log server 8010.
#
# Nimbus keeps its topologies across stop/start (as a real cluster does; with --ha they are in
# etcd's data dir); to start from scratch, or to switch between the layouts, stop and remove
# $TEMPEST_HOME.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly SUPERVISORS=(supervisor-1 supervisor-2)
readonly ETCD_CLIENT="127.0.0.1:23790"
readonly ETCD_PEER="127.0.0.1:23800"
# Seconds of the leader's etcd lease in the --ha layout (Nimbus's default).
readonly LEASE_SECS=5
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

# The address of Nimbus daemon $1.
nimbus_addr_of() {
    case "$1" in
        nimbus | nimbus-1) echo "127.0.0.1:6627" ;;
        nimbus-2) echo "127.0.0.1:6628" ;;
        nimbus-3) echo "127.0.0.1:6629" ;;
        *) die "unknown daemon $1" ;;
    esac
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

# The layout: "ha" if $TEMPEST_HOME was started with --ha, else "single".
mode() {
    if [[ "$(cat "$HOME_DIR/mode" 2>/dev/null || true)" == ha ]]; then
        echo ha
    else
        echo single
    fi
}

# Chooses the layout's daemons: NIMBUSES (names), NIMBUS_URL (one URL, or the seed list) and
# NIMBUS_URLS (each URL).
set_layout() {
    local name
    if [[ "$1" == ha ]]; then
        NIMBUSES=(nimbus-1 nimbus-2 nimbus-3)
    else
        NIMBUSES=(nimbus)
    fi
    NIMBUS_URLS=()
    for name in "${NIMBUSES[@]}"; do
        NIMBUS_URLS+=("http://$(nimbus_addr_of "$name")")
    done
    NIMBUS_URL="$(IFS=,; echo "${NIMBUS_URLS[*]}")"
}

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
        local features=()
        if [[ "$(mode)" == ha ]]; then
            features=(--features nimbus/etcd)
        fi
        say "building nimbus, supervisor and tempest (cargo build --release" \
            "${features[*]+"${features[*]}"})"
        cargo build --release --manifest-path "$REPO_ROOT/Cargo.toml" \
            -p nimbus -p supervisor -p tempest-cli ${features[@]+"${features[@]}"}
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

# The etcd binary for --ha.
etcd_bin() {
    local bin="${ETCD_BIN:-$(command -v etcd || true)}"
    [[ -n "$bin" && -x "$bin" ]] ||
        die "--ha needs etcd: install it (Debian: apt-get install etcd-server) or set ETCD_BIN"
    echo "$bin"
}

start_etcd() {
    local pid
    if pid="$(running_pid etcd)"; then
        say "etcd already running (pid $pid)"
        return
    fi
    # One member on loopback; its data dir holds the cluster state (topologies, assignments).
    launch etcd "$(etcd_bin)" --name local --data-dir "$(data_dir_of etcd)" \
        --listen-client-urls "http://$ETCD_CLIENT" --advertise-client-urls "http://$ETCD_CLIENT" \
        --listen-peer-urls "http://$ETCD_PEER" --initial-advertise-peer-urls "http://$ETCD_PEER" \
        --initial-cluster "local=http://$ETCD_PEER" --initial-cluster-state new \
        --logger zap --experimental-enable-lease-checkpoint
}

start_nimbus() {
    local name="$1" pid addr ha=()
    if pid="$(running_pid "$name")"; then
        say "$name already running (pid $pid)"
        return
    fi
    addr="$(nimbus_addr_of "$name")"
    if [[ "$(mode)" == ha ]]; then
        ha=(--store etcd --etcd-endpoints "http://$ETCD_CLIENT" --cluster-name local
            --leader-lease-secs "$LEASE_SECS" --advertise-url "http://$addr")
    fi
    launch "$name" "$(bin_dir)/nimbus" \
        --data-dir "$(data_dir_of "$name")" --listen "$addr" ${ha[@]+"${ha[@]}"}
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

# GET $1 from Nimbus with the secret (from the first Nimbus that answers it: with --ha the
# followers refuse with 503); the header is read from stdin so the secret is not on curl's
# command line.
nimbus_get() {
    local url
    for url in "${NIMBUS_URLS[@]}"; do
        if printf 'x-tempest-secret: %s\n' "$(secret)" |
            curl --silent --fail --max-time 2 --header @- "$url$1"; then
            return 0
        fi
    done
    return 1
}

# The last lines of daemon $1's log, indented.
log_tail() {
    local log
    log="$HOME_DIR/logs/$1.log"
    [[ -f "$log" ]] && tail -n 15 "$log" | sed 's/^/    /' >&2
    return 0
}

# Waits until Nimbus answers (with --ha: until one of them leads), then (briefly) until both
# supervisors have registered.
wait_for_cluster() {
    local deadline=$((SECONDS + START_DEADLINE_SECS)) name summary=""
    until summary="$(nimbus_get /api/v1/cluster/summary 2>/dev/null)"; do
        for name in "${NIMBUSES[@]}" $([[ "$(mode)" == ha ]] && echo etcd); do
            if ! running_pid "$name" >/dev/null; then
                echo "local-cluster: $name exited; the end of its log:" >&2
                log_tail "$name"
                exit 1
            fi
        done
        if ((SECONDS >= deadline)); then
            echo "local-cluster: no Nimbus answered at $NIMBUS_URL within" \
                "${START_DEADLINE_SECS}s; the end of the log of ${NIMBUSES[0]}:" >&2
            log_tail "${NIMBUSES[0]}"
            exit 1
        fi
        sleep 0.2
    done
    if [[ "$(mode)" == ha ]]; then
        say "a Nimbus leads; the seeds are $NIMBUS_URL"
    else
        say "Nimbus answers at $NIMBUS_URL"
    fi
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
    local home tempest target="${CARGO_TARGET_DIR:-target}" ha_note="" metrics_note=""
    home="$HOME_DIR"
    if [[ "$(mode)" == ha ]]; then
        ha_note="etcd at http://$ETCD_CLIENT. Kill -9 the leading Nimbus ('$0 status' shows which):
another one leads within about ${LEASE_SECS}s, and the CLI and supervisors follow it.
"
        metrics_note=" (on the leader; a follower answers 503)"
    fi
    tempest="$(bin_dir)/tempest"
    [[ -n "${TEMPEST_BIN_DIR:-}" || -n "${CARGO_TARGET_DIR:-}" ]] ||
        tempest="target/release/tempest"
    cat <<EOF

Tempest is running: Nimbus $NIMBUS_URL, supervisors with slots 6700,6701 and 6710,6711.
${ha_note}
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
Metrics: curl -H "Authorization: Bearer \$TEMPEST_SECRET" ${NIMBUS_URLS[0]}/metrics${metrics_note}
Stop: $0 stop
EOF
}

cmd_start() {
    local want="${1:-single}" have
    if [[ -d "$HOME_DIR" ]] && [[ -e "$HOME_DIR/mode" || -d "$(data_dir_of nimbus)" ]]; then
        have="$(mode)"
        [[ "$have" == "$want" ]] ||
            die "$HOME_DIR holds a cluster of the $have layout; to start the $want one," \
                "stop it and remove $HOME_DIR (or use another TEMPEST_HOME)"
    fi
    mkdir -p "$HOME_DIR"
    if [[ "$want" == ha ]]; then
        echo ha >"$HOME_DIR/mode"
    fi
    set_layout "$want"
    build
    secret >/dev/null
    if [[ "$want" == ha ]]; then
        start_etcd
    fi
    local name
    for name in "${NIMBUSES[@]}"; do
        start_nimbus "$name"
    done
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
    pids=()
    for name in "${NIMBUSES[@]}"; do
        if pid="$(running_pid "$name")"; then
            say "stopping $name (pid $pid)"
            pids+=("$pid")
        fi
    done
    terminate nimbus "${pids[@]+"${pids[@]}"}"
    # etcd last: the Nimbus hosts hand over their leases on SIGTERM.
    if pid="$(running_pid etcd)"; then
        say "stopping etcd (pid $pid)"
        terminate etcd "$pid"
    fi
    for name in etcd "${NIMBUSES[@]}" "${SUPERVISORS[@]}"; do
        rm -f "$(pid_file_of "$name")"
    done
    say "stopped"
}

cmd_status() {
    local name pid port topology code=0 home tempest
    home="$HOME_DIR"
    local daemons=("${NIMBUSES[@]}" "${SUPERVISORS[@]}")
    if [[ "$(mode)" == ha ]]; then
        daemons=(etcd "${daemons[@]}")
    fi
    for name in "${daemons[@]}"; do
        if pid="$(running_pid "$name")"; then
            printf '%-13s running (pid %s)%s\n' "$name" "$pid" "$(role_of "$name")"
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
    local any=""
    for name in "${NIMBUSES[@]}"; do
        running_pid "$name" >/dev/null && any=yes
    done
    if [[ -z "$any" ]]; then
        echo "Nimbus is not running: $0 start$([[ "$(mode)" == ha ]] && echo " --ha")"
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

# ", leader" or ", follower" for a Nimbus of the --ha layout (from its GET /api/v1/leader).
role_of() {
    [[ "$1" == nimbus-* ]] || return 0
    local answer
    answer="$(printf 'x-tempest-secret: %s\n' "$(secret)" |
        curl --silent --fail --max-time 2 --header @- \
            "http://$(nimbus_addr_of "$1")/api/v1/leader" 2>/dev/null || true)"
    if [[ "$answer" =~ \"is_leader\"[[:space:]]*:[[:space:]]*true ]]; then
        echo ", leader"
    elif [[ -n "$answer" ]]; then
        echo ", follower"
    fi
}

main() {
    case "${1:-}" in
        start)
            case "${2:-}" in
                "") cmd_start single ;;
                --ha) cmd_start ha ;;
                *)
                    echo "usage: $0 start [--ha]" >&2
                    exit 2
                    ;;
            esac
            ;;
        stop)
            set_layout "$(mode)"
            cmd_stop
            ;;
        status)
            set_layout "$(mode)"
            cmd_status
            ;;
        *)
            echo "usage: $0 start [--ha]|stop|status" >&2
            exit 2
            ;;
    esac
}

main "$@"
