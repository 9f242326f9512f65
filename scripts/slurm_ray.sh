#!/usr/bin/env bash
# One portable SLURM launcher for a multi-node Ray cluster plus one job command (itwinai-ray).
#
#   sbatch scripts/slurm_ray.sh                                   # runs the job command at the end
#   sbatch scripts/slurm_ray.sh itwinai-ray exec-pipeline -c hpo.yaml   # or the one given here
#   itwinai-ray slurm --nodes 4 --gpus-per-node 4 --config hpo.yaml      # prints a filled-in copy
#
# Change only the #SBATCH lines and the job command at the end of this file. The script:
#   - starts a Ray head on the first node of the allocation and one Ray worker on each other node
#     (`srun --overlap`, in the background), with free ports, a per-job RAY_TMPDIR, the CPU and
#     GPU counts of the allocation, token authentication and the dashboard on 127.0.0.1 only;
#   - waits until the head's port is open and every node has registered (no fixed sleeps), and
#     fails with the head's (or the missing node's) log when that takes RAY_START_TIMEOUT_S;
#   - runs the job command on the head node with RAY_ADDRESS exported, so it joins this cluster;
#   - stops this job's Ray processes, and only those, on exit, failure and scancel (never
#     `ray stop`, which kills every Ray on the node, other users' too);
#   - exits with the job command's exit code.
#   - before the time limit (SIGUSR1 from `--signal=B:USR1@<s>`, below), asks the job command to
#     stop in order (itwinai-ray: running trials stop, the experiment state is saved, exit 75);
#     with ITWINAI_RAY_REQUEUE=1 (and `#SBATCH --requeue`) a job that exits 75 requeues itself,
#     and the next allocation continues the experiment (set run_config.resume: auto).
#     ITWINAI_RAY_STOP_AT (when the signal is due: the job's end time minus that lead) is
#     exported: a trial whose first report would come after it waits for the next allocation.
#
# Optional settings (environment variables, read when the job starts; sbatch passes the caller's
# environment on by default):
#   RAY_VENV                 virtual environment to activate on every node (default: use the
#                            environment sbatch was called from). Needs ray and itwinai-ray.
#   RAY_NODE_IP_INTERFACE    network interface whose IPv4 address Ray uses on each node, e.g.
#                            ib0 for InfiniBand (default: the node's SLURM NodeAddr).
#   RAY_NODE_IP_SUFFIX       suffix appended to the SLURM node name before resolving it, e.g.
#                            "i" on JUWELS (jwb0001 -> jwb0001i, the InfiniBand address).
#   RAY_GPUS_PER_NODE        GPUs Ray may use per node (default: $SLURM_GPUS_ON_NODE, else 0).
#   RAY_CPUS_PER_NODE        CPUs Ray may use per node (default: $SLURM_CPUS_ON_NODE).
#   RAY_OBJECT_STORE_MB      object store per node in MB (default: 30% of --mem when the job
#                            has one, else Ray's default of 30% of the node's RAM).
#   RAY_TMPDIR_BASE          node-local directory for the per-job Ray temp dirs (default: /tmp;
#                            keep it short: Ray's socket paths must stay under 107 characters).
#   RAY_START_TIMEOUT_S      seconds to wait for the head and for all nodes (default: 180).
#   RAY_STOP_TIMEOUT_S       seconds to wait for Ray to stop at the end (default: 20).
#   RAY_AUTH_MODE            token (default: a fresh token per job, in files readable only by
#                            you) or disabled.
#   RAY_INCLUDE_DASHBOARD    1 (default) or 0. The dashboard listens on 127.0.0.1 of the head:
#                            reach it with `ssh -L 8265:127.0.0.1:<port> <head node>`.
#   ITWINAI_CONFIG           YAML for the default job command (default: config.yaml).
#   ITWINAI_RAY_REQUEUE      1: requeue the job (scontrol requeue) when the job command exits 75
#                            (interrupted before the time limit, state saved). Default 0.
#   ITWINAI_RAY_SIGNAL_BEFORE_S  the lead of `--signal=B:USR1@<s>` when it is given to sbatch
#                            on the command line (default: read from this script's #SBATCH line).
#
#SBATCH --job-name=itwinai-ray
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=8
##SBATCH --gpus-per-node=4
##SBATCH --partition=gpu
##SBATCH --account=my_project
#SBATCH --time=01:00:00
#SBATCH --output=%x-%j.out
# SIGUSR1 to this script 120 s before the time limit: time for running trials to stop and
# the experiment state to be saved (a trial loses at most the epoch it is in).
#SBATCH --signal=B:USR1@120
##SBATCH --requeue
# 1: a job command that exits 75 (interrupted, state saved) requeues the job (needs --requeue).
ITWINAI_RAY_REQUEUE="${ITWINAI_RAY_REQUEUE:-0}"

set -uo pipefail

_log() { printf '[slurm_ray %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
_die() { printf '[slurm_ray] error: %s\n' "$*" >&2; exit "${2:-1}"; }

# ------------------------------------------------------------------ functions run on each node
# These run inside `srun` on every node (their definitions are shipped with `declare -f`), so
# they may use only the environment and their arguments.

# The IPv4 address Ray should use on this node.
ray_node_ip() {
    local node="${SLURMD_NODENAME:-$(hostname -s)}" addr ip
    if [[ -n "${RAY_NODE_IP_INTERFACE:-}" ]]; then
        ip=$(ip -o -4 addr show dev "$RAY_NODE_IP_INTERFACE" 2>/dev/null \
             | awk '{split($4, a, "/"); print a[1]; exit}')
        [[ -n "$ip" ]] || { echo "no IPv4 address on interface '$RAY_NODE_IP_INTERFACE' of" \
            "node $node (RAY_NODE_IP_INTERFACE); see 'ip -4 addr' there" >&2; return 1; }
    elif [[ -n "${RAY_NODE_IP_SUFFIX:-}" ]]; then
        ip=$(getent ahostsv4 "${node}${RAY_NODE_IP_SUFFIX}" | awk '{print $1; exit}')
        [[ -n "$ip" ]] || { echo "cannot resolve '${node}${RAY_NODE_IP_SUFFIX}'" \
            "(node name + RAY_NODE_IP_SUFFIX)" >&2; return 1; }
    else
        # SLURM's own address of the node (NodeAddr), resolved if it is a name.
        addr=$(scontrol show node -o "$node" 2>/dev/null \
               | tr ' ' '\n' | awk -F= '$1 == "NodeAddr" {print $2; exit}')
        ip=$(getent ahostsv4 "${addr:-$node}" | awk '{print $1; exit}')
        [[ -n "$ip" ]] || ip=$(hostname -I 2>/dev/null | awk '{print $1}')
        [[ -n "$ip" ]] || { echo "cannot find the IP address of node $node; set" \
            "RAY_NODE_IP_INTERFACE or RAY_NODE_IP_SUFFIX" >&2; return 1; }
    fi
    printf '%s\n' "$ip"
}

# N free TCP ports on this node.
ray_free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# Start Ray on this node and block: ray_node head|worker <node ip> <head address or gcs port>.
ray_node() {
    local role="$1" ip="$2" target="$3" node="${SLURMD_NODENAME:-$(hostname -s)}"
    local tmp="${_RAY_JOB_TMP_PREFIX}${node}" cpus gpus args ports
    [[ -n "${RAY_VENV:-}" ]] && source "$RAY_VENV/bin/activate"
    mkdir -p -m 700 "$tmp" || return 1
    if [[ "${RAY_AUTH_MODE}" == token ]]; then
        (umask 077 && printf '%s' "$_RAY_JOB_TOKEN" > "$tmp/auth_token") || return 1
        export RAY_AUTH_TOKEN_PATH="$tmp/auth_token"
    fi
    unset _RAY_JOB_TOKEN
    # Ray makes its own directories mode 0777: they live inside this 0700 one.
    export RAY_TMPDIR="$tmp/r"
    cpus="${RAY_CPUS_PER_NODE:-${SLURM_CPUS_ON_NODE:-1}}"
    gpus="${RAY_GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-0}}"
    read -r -a ports <<< "$(ray_free_ports 8)" || return 1
    args=(--block --disable-usage-stats --node-ip-address="$ip" --node-name="$node"
          --temp-dir="$RAY_TMPDIR" --num-cpus="$cpus" --num-gpus="$gpus"
          --node-manager-port="${ports[0]}" --object-manager-port="${ports[1]}"
          --dashboard-agent-listen-port="${ports[2]}" --dashboard-agent-grpc-port="${ports[3]}"
          --metrics-export-port="${ports[4]}" --runtime-env-agent-port="${ports[5]}")
    [[ -n "${_RAY_OBJECT_STORE_BYTES:-}" ]] \
        && args+=(--object-store-memory="$_RAY_OBJECT_STORE_BYTES")
    if [[ "$role" == head ]]; then
        args+=(--head --port="$target" --ray-client-server-port="${ports[6]}"
               --include-dashboard="$([[ "${RAY_INCLUDE_DASHBOARD:-1}" == 1 ]] \
                                      && echo true || echo false)"
               --dashboard-host=127.0.0.1 --dashboard-port="${ports[7]}")
    else
        args+=(--address="$target")
    fi
    echo "ray start on $node ($ip): ${args[*]}"
    exec ray start "${args[@]}"
}

# This job's Ray processes on this node: those under its per-job temp dirs, and the
# multiprocessing forkserver of Ray's dashboard, whose command line names no directory (found
# by this job's id in its environment; it can outlive a head that failed to start).
ray_job_pids() {
    local pid
    pgrep -u "$(id -u)" -f -- "$_RAY_JOB_TMP_PREFIX" | grep -vx "$$"
    for pid in $(pgrep -u "$(id -u)" -f -- "multiprocessing.forkserver"); do
        tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null \
            | grep -qx "SLURM_JOB_ID=${SLURM_JOB_ID:-none}" && echo "$pid"
    done
    return 0
}

# Kill this job's leftover Ray processes on this node: SIGTERM, up to $1 seconds (default 5)
# to exit, then SIGKILL.
ray_node_sweep() {
    local pids pid grace="${1:-5}"
    for sig in TERM KILL; do
        pids=$(ray_job_pids)
        [[ -z "$pids" ]] && break
        for pid in $pids; do kill -s "$sig" "$pid" 2>/dev/null; done
        [[ "$sig" == TERM ]] && for _ in $(seq $((grace * 4))); do
            pids=$(ray_job_pids)
            [[ -z "$pids" ]] && break
            sleep 0.25
        done
    done
    rm -rf "${_RAY_JOB_TMP_PREFIX}"* 2>/dev/null
    return 0
}

_NODE_FUNCS="$(declare -f ray_node_ip ray_free_ports ray_node ray_job_pids ray_node_sweep)"

# ------------------------------------------------------------------ batch side
_tail() { [[ -f "$1" ]] && { echo "--- last lines of $1:"; tail -n "${2:-30}" "$1"; echo "---"; }; }

# Print the log tails and fail: used when Ray does not come up.
_fail_start() {
    local msg="$1"; shift
    printf '[slurm_ray] error: %s\n' "$msg" >&2
    for f in "$@"; do _tail "$f" >&2; done
    exit 3
}

_port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

cleanup() {
    local rc=$? deadline pid node grace="${RAY_STOP_TIMEOUT_S:-20}"
    trap - EXIT INT TERM
    # After scancel, SLURM kills everything KillWait seconds (often 30) after its SIGTERM.
    [[ -n "${_CANCELLED:-}" ]] && grace=3
    _CLEANING=1
    if [[ -n "${JOB_PID:-}" ]] && kill -0 "$JOB_PID" 2>/dev/null; then
        _log "stopping the job command (pid $JOB_PID)"
        kill -TERM "$JOB_PID" 2>/dev/null
        deadline=$((SECONDS + (grace < 10 ? grace : 10)))
        while kill -0 "$JOB_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        kill -KILL "$JOB_PID" 2>/dev/null
    fi
    if ((${#SRUN_PIDS[@]})); then
        _log "stopping Ray on ${NODES[*]}"
        for pid in "${SRUN_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
        deadline=$((SECONDS + grace))
        for pid in "${SRUN_PIDS[@]}"; do
            while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
            kill -KILL "$pid" 2>/dev/null
        done
        # Leftovers: on the other nodes through srun (not possible once the job is cancelled;
        # SLURM then kills the job's processes itself), and here.
        if [[ -z "${_CANCELLED:-}" ]]; then
            for node in "${NODES[@]:1}"; do
                timeout 30 srun --overlap --nodes=1 --ntasks=1 -w "$node" \
                    bash -c "$_NODE_FUNCS; ray_node_sweep" >/dev/null 2>&1 &
            done
        fi
        ray_node_sweep "$([[ -n "${_CANCELLED:-}" ]] && echo 1 || echo 5)"
        wait 2>/dev/null
    fi
    [[ -n "${_JOB_DIR:-}" ]] && rm -rf "$_JOB_DIR"
    if [[ -n "${JOB_RC:-}" ]]; then rc=$JOB_RC; fi
    _log "done, exit code $rc"
    maybe_requeue "$rc"
    exit "$rc"
}

on_usr1() {
    if [[ -z "${JOB_PID:-}" ]]; then  # Ray still starting: the job command will not start
        _log "time limit near (SIGUSR1) before the job command started"
        _USR1_EARLY=1
        return
    fi
    _log "time limit near (SIGUSR1): asking the job command to stop in order"
    kill -USR1 "$JOB_PID" 2>/dev/null
}

stop_signal_at() {
    # When SIGUSR1 is due, in Unix seconds: the job's end time minus the lead of this script's
    # `#SBATCH --signal=B:USR1@<s>` (SLURM does not show a job's --signal: when you give it to
    # sbatch on the command line, set ITWINAI_RAY_SIGNAL_BEFORE_S too). Nothing when either
    # is unknown (no time limit).
    local lead="${ITWINAI_RAY_SIGNAL_BEFORE_S:-}" end
    [[ -n "$lead" ]] || lead=$(sed -n 's/^#SBATCH --signal=B:USR1@\([0-9][0-9]*\).*/\1/p' "$0" | head -n 1)
    end=$(squeue -h -j "${SLURM_JOB_ID:-}" -o %e 2>/dev/null)
    [[ -n "$lead" && "$end" == [0-9]* ]] || return 0
    end=$(date -d "$end" +%s 2>/dev/null) || return 0
    echo $((end - lead))
}

maybe_requeue() {
    # Interrupted in order (exit 75) and asked to: back into the queue; the next allocation
    # resumes the experiment. SLURM then ends this job; the cleanup has run by then.
    if [[ "${1:-}" == 75 && "${ITWINAI_RAY_REQUEUE:-0}" == 1 && -n "${SLURM_JOB_ID:-}" ]]; then
        _log "requeueing job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0})"
        scontrol requeue "$SLURM_JOB_ID" || _log "scontrol requeue failed: resubmit by hand"
    fi
}

on_signal() {
    _CANCELLED=1
    _log "received SIG$1: cleaning up"
    [[ -z "${JOB_RC:-}" ]] && JOB_RC=$((128 + $2))
    exit "$JOB_RC"
}

main() {
    [[ -n "${SLURM_JOB_ID:-}" && -n "${SLURM_JOB_NODELIST:-}" ]] \
        || _die "SLURM_JOB_ID / SLURM_JOB_NODELIST are not set: this script runs under SLURM.
  Submit it with: sbatch $0 [command ...]   (or run it inside an salloc allocation)" 2
    if [[ -n "${RAY_VENV:-}" ]]; then
        [[ -f "$RAY_VENV/bin/activate" ]] \
            || _die "RAY_VENV=$RAY_VENV has no bin/activate: give a virtual environment." 2
        source "$RAY_VENV/bin/activate"
    fi
    command -v ray >/dev/null || _die "the 'ray' command is not on PATH: activate the \
environment with ray and itwinai-ray before sbatch, or set RAY_VENV." 2
    command -v python3 >/dev/null || _die "python3 is not on PATH (see RAY_VENV)." 2

    mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
    ((${#NODES[@]})) || _die "scontrol show hostnames '$SLURM_JOB_NODELIST' gave no node." 2
    local head="${NODES[0]}" timeout="${RAY_START_TIMEOUT_S:-180}"
    if [[ -n "${SLURMD_NODENAME:-}" && "$SLURMD_NODENAME" != "$head" ]]; then
        _die "the batch script runs on $SLURMD_NODENAME, not on the first node $head." 2
    fi

    export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
    [[ "$RAY_AUTH_MODE" == token || "$RAY_AUTH_MODE" == disabled ]] \
        || _die "RAY_AUTH_MODE=$RAY_AUTH_MODE: use token or disabled." 2
    export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="${RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S:-0}"
    export RAY_USAGE_STATS_ENABLED=0
    export _RAY_JOB_TMP_PREFIX="${RAY_TMPDIR_BASE:-/tmp}/ray-${SLURM_JOB_ID}-"
    _JOB_DIR="${_RAY_JOB_TMP_PREFIX}job"
    mkdir -p -m 700 "$_JOB_DIR" || _die "cannot create $_JOB_DIR (RAY_TMPDIR_BASE)." 2
    if [[ -n "${RAY_OBJECT_STORE_MB:-}" ]]; then
        export _RAY_OBJECT_STORE_BYTES=$((RAY_OBJECT_STORE_MB * 1024 * 1024))
    elif [[ -n "${SLURM_MEM_PER_NODE:-}" && "${SLURM_MEM_PER_NODE}" != 0 ]]; then
        export _RAY_OBJECT_STORE_BYTES=$((SLURM_MEM_PER_NODE * 1024 * 1024 * 3 / 10))
    fi
    if [[ "$RAY_AUTH_MODE" == token ]]; then
        _RAY_JOB_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))') \
            || _die "cannot generate the Ray auth token with python3."
        export _RAY_JOB_TOKEN
    fi

    local head_ip gcs_port
    head_ip=$(ray_node_ip) || _die "cannot find the head node's IP address (see above)." 2
    gcs_port=$(ray_free_ports 1) || _die "cannot pick a free port with python3."
    export RAY_ADDRESS="$head_ip:$gcs_port"

    _log "job $SLURM_JOB_ID: Ray head on $head ($RAY_ADDRESS), ${#NODES[@]} node(s):" \
         "${NODES[*]}; auth: $RAY_AUTH_MODE"
    local log="$_JOB_DIR/ray-$head.log"
    srun --overlap --nodes=1 --ntasks=1 -w "$head" --kill-on-bad-exit=0 \
        bash -c "$_NODE_FUNCS; ray_node head '$head_ip' '$gcs_port'" >"$log" 2>&1 &
    SRUN_PIDS+=($!)
    local deadline=$((SECONDS + timeout))
    until _port_open "$head_ip" "$gcs_port"; do
        kill -0 "${SRUN_PIDS[0]}" 2>/dev/null \
            || _fail_start "Ray on node $head (head) exited before its port $gcs_port opened." "$log"
        ((SECONDS < deadline)) || _fail_start "the Ray head on $head did not open\
 $RAY_ADDRESS within ${timeout} s (RAY_START_TIMEOUT_S)." "$log"
        sleep 0.2
    done
    _log "head port open after $((SECONDS - deadline + timeout)) s"

    local node
    for node in "${NODES[@]:1}"; do
        srun --overlap --nodes=1 --ntasks=1 -w "$node" --kill-on-bad-exit=0 \
            bash -c "$_NODE_FUNCS; ip=\$(ray_node_ip) || exit 1; ray_node worker \"\$ip\" '$RAY_ADDRESS'" \
            >"$_JOB_DIR/ray-$node.log" 2>&1 &
        SRUN_PIDS+=($!)
    done
    unset _RAY_JOB_TOKEN
    if [[ "$RAY_AUTH_MODE" == token ]]; then
        export RAY_AUTH_TOKEN_PATH="${_RAY_JOB_TMP_PREFIX}${head}/auth_token"
    fi
    export RAY_TMPDIR="${_RAY_JOB_TMP_PREFIX}${head}/r"

    # All nodes registered? The waiter exits 0 when they are, 1 naming the missing ones.
    local waited=0 missing_file="$_JOB_DIR/missing"
    python3 -m itwinai_ray.backends.ray.nodes wait --address "$RAY_ADDRESS" \
        --timeout "$((deadline - SECONDS > 1 ? deadline - SECONDS : 1))" \
        --missing-file "$missing_file" "${NODES[@]}" &
    local waiter=$!
    while kill -0 "$waiter" 2>/dev/null; do
        local i
        for i in "${!SRUN_PIDS[@]}"; do
            if ! kill -0 "${SRUN_PIDS[$i]}" 2>/dev/null; then
                kill "$waiter" 2>/dev/null
                # With the raylet's own logs where this host sees them (the node's temp dir
                # is node-local: on another host they are not here).
                local node_logs="${_RAY_JOB_TMP_PREFIX}${NODES[$i]}/r/session_latest/logs"
                _fail_start "Ray on node ${NODES[$i]} exited during start-up." \
                    "$_JOB_DIR/ray-${NODES[$i]}.log" "$node_logs/raylet.out" \
                    "$node_logs/raylet.err"
            fi
        done
        sleep 0.2
    done
    wait "$waiter" || waited=$?
    if ((waited)); then
        local logs=() m
        for m in $(cat "$missing_file" 2>/dev/null); do logs+=("$_JOB_DIR/ray-$m.log"); done
        _fail_start "only some nodes joined the Ray cluster within ${timeout} s\
 (RAY_START_TIMEOUT_S); missing: $(cat "$missing_file" 2>/dev/null || echo '?')." \
            "${logs[@]}" "$log"
    fi
    _log "Ray cluster up: ${#NODES[@]} node(s) after $((SECONDS - deadline + timeout)) s"
}

# ------------------------------------------------------------------ run
SRUN_PIDS=()
NODES=()
trap cleanup EXIT
trap 'on_signal TERM 15' TERM
trap 'on_signal INT 2' INT
trap on_usr1 USR1
main
if [[ -n "${_USR1_EARLY:-}" ]]; then
    JOB_RC=75
    _log "not starting the job command: too close to the time limit (exit 75)"
    exit "$JOB_RC"
fi
if [[ -z "${ITWINAI_RAY_STOP_AT:-}" ]]; then
    ITWINAI_RAY_STOP_AT=$(stop_signal_at)
    if [[ -n "$ITWINAI_RAY_STOP_AT" ]]; then
        export ITWINAI_RAY_STOP_AT
        _log "stop signal (SIGUSR1) due at $(date -d "@$ITWINAI_RAY_STOP_AT" +%H:%M:%S)"
    fi
fi
_log "running: ${*:-the default job command}"

# ====================== the job command: edit it, or pass one to sbatch ======================
if (($#)); then
    "$@" &
else
    itwinai-ray exec-pipeline --config "${ITWINAI_CONFIG:-config.yaml}" &
fi
# ==============================================================================================
JOB_PID=$!
# `wait` returns early when a signal arrives: on TERM/INT on_signal has already set JOB_RC and
# exited; after USR1 (forwarded to the job command) wait again until the command ends.
while :; do
    wait "$JOB_PID"
    JOB_RC=$?
    kill -0 "$JOB_PID" 2>/dev/null || break
done
_log "job command exited with $JOB_RC"
exit "$JOB_RC"
