#!/usr/bin/env bash
# Smoke test of the cross-built brokers under user-mode emulation (run scripts/cross.sh first):
# for the mipsle binary (qemu-mipsel-static -cpu 24Kc) and the armv6 binary (qemu-arm-static
# -cpu arm1176), each on a free 127.0.0.1 port with a fresh data dir:
#   1. a persistent session subscribes at QoS 1 and disconnects (mosquitto_sub -c -E);
#   2. 20 QoS 1 messages are published to it, each acknowledged (mosquitto_pub);
#   3. the emulated broker is killed with SIGKILL and restarted on the same data dir and port;
#   4. the session reconnects and must receive exactly those 20 messages, in order;
#   5. SIGTERM must stop the broker with exit status 0.
# Usage: qemu-smoke.sh [DISTDIR]   (default dist/; TARGETS="mipsle" or "armv6" for one target,
# TARGETS=mips for big-endian MIPS)
# Every wait is bounded; only the processes this script starts are signalled.
set -euo pipefail
cd "$(dirname "$0")/.."

dist=${1:-dist}
count=20

declare -A qemu=([mipsle]=qemu-mipsel-static [armv6]=qemu-arm-static [mips]=qemu-mips-static)
declare -A cpu=([mipsle]=24Kc [armv6]=arm1176 [mips]=24Kc)

exec 3>&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
broker_pid=

# kill_leftover kills the broker this subshell started, if it still runs (on any failure).
kill_leftover() {
	if [ -n "$broker_pid" ]; then
		kill -KILL "$broker_pid" 2>/dev/null || true
		wait "$broker_pid" 2>/dev/null || true
	fi
}

# start_broker NAME LISTEN DATADIR LOG: starts the emulated broker in the background (the qemu
# process is the broker's PID) and waits up to 60 s for it to listen; sets broker_pid and addr.
start_broker() {
	local name=$1 listen=$2 data=$3 log=$4 skip
	skip=$(wc -l <"$log")
	"${qemu[$name]}" -cpu "${cpu[$name]}" "$dist/edgebroker-linux-$name" \
		--listen "$listen" --data-dir "$data" >>"$log" 2>&1 &
	broker_pid=$!
	addr=
	local deadline=$((SECONDS + 60))
	while [ -z "$addr" ]; do
		if ! kill -0 "$broker_pid" 2>/dev/null; then
			echo "broker exited during startup:" >&2
			cat "$log" >&2
			return 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			echo "broker not listening after 60s:" >&2
			cat "$log" >&2
			return 1
		fi
		addr=$(tail -n "+$((skip + 1))" "$log" | sed -n 's/.*msg=listening addr=\([^ ]*\).*/\1/p')
		[ -n "$addr" ] || sleep 0.2
	done
}

# stop_broker SIGNAL TIMEOUT: signals the broker and waits up to TIMEOUT seconds for it to exit;
# sets status to its exit status (128+n for a signal). The function's stderr is discarded, which
# silences the shell's own "Killed" notice; its messages go to fd 3, the script's stderr.
stop_broker() {
	local sig=$1 deadline=$((SECONDS + $2))
	kill "-$sig" "$broker_pid"
	while kill -0 "$broker_pid"; do
		if [ $SECONDS -ge $deadline ]; then
			echo "broker still running $2s after SIG$sig" >&3
			return 1
		fi
		sleep 0.2
	done
	status=0
	wait "$broker_pid" || status=$?
	broker_pid=
} 2>/dev/null

# smoke NAME: the whole scenario for one target; prints its pass or fail line.
smoke() {
	local name=$1 bin="$dist/edgebroker-linux-$1"
	local data="$work/$name-data" log="$work/$name.log"
	local id="smoke-$name" topic="smoke/$name" host port got want i
	if [ ! -x "$bin" ]; then
		echo "$bin not found: run scripts/cross.sh $dist first" >&2
		return 1
	fi
	command -v "${qemu[$name]}" >/dev/null || {
		echo "${qemu[$name]} not found (Debian package qemu-user-static)" >&2
		return 1
	}
	"${qemu[$name]}" -cpu "${cpu[$name]}" "$bin" --version
	: >"$log"

	start_broker "$name" 127.0.0.1:0 "$data" "$log"
	host=${addr%:*} port=${addr##*:}
	echo "$name: broker PID $broker_pid on $addr, data in $data"

	timeout 30 mosquitto_sub -h "$host" -p "$port" -c -i "$id" -q 1 -t "$topic" -E
	for i in $(seq "$count"); do
		timeout 30 mosquitto_pub -h "$host" -p "$port" -i "smoke-pub-$name" -q 1 -t "$topic" -m "message $i"
	done
	echo "$name: $count QoS 1 messages acknowledged; SIGKILL"
	stop_broker KILL 10
	if [ "$status" -ne 137 ]; then
		echo "$name: broker exit status $status after SIGKILL, want 137" >&2
		return 1
	fi

	echo "--- restart after SIGKILL" >>"$log"
	start_broker "$name" "$addr" "$data" "$log"
	got=$(timeout 90 mosquitto_sub -h "$host" -p "$port" -c -i "$id" -q 1 -t "$topic" -C "$count" -W 60) || true
	want=$(for i in $(seq "$count"); do echo "message $i"; done)
	if [ "$got" != "$want" ]; then
		echo "$name: after the restart the session received:" >&2
		echo "$got" >&2
		echo "want message 1 .. message $count in order; broker log:" >&2
		cat "$log" >&2
		return 1
	fi
	echo "$name: all $count messages delivered after SIGKILL and restart; SIGTERM"
	stop_broker TERM 30
	if [ "$status" -ne 0 ]; then
		echo "$name: broker exit status $status after SIGTERM, want 0; broker log:" >&2
		cat "$log" >&2
		return 1
	fi
}

failed=()
start=$SECONDS
for name in ${TARGETS:-mipsle armv6}; do
	if [ -z "${qemu[$name]:-}" ]; then
		echo "qemu-smoke: unknown target $name (mipsle, armv6 or mips)" >&2
		exit 2
	fi
	t0=$SECONDS
	# A subshell of its own, outside any condition so that set -e holds inside it.
	set +e
	(
		set -e
		trap kill_leftover EXIT
		smoke "$name"
	)
	rc=$?
	set -e
	if [ $rc -eq 0 ]; then
		echo "qemu-smoke $name: PASS in $((SECONDS - t0))s"
	else
		echo "qemu-smoke $name: FAIL after $((SECONDS - t0))s"
		failed+=("$name")
	fi
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "qemu-smoke: FAIL (${failed[*]}) in $((SECONDS - start))s"
	exit 1
fi
echo "qemu-smoke: PASS in $((SECONDS - start))s"
