// Command edgebench is the load generator behind `make bench`: in one run it starts edgebroker
// and Mosquitto, one after the other on their own free loopback ports, drives each with the same
// scenarios, and prints one table comparing them.
//
// Scenarios (each bounded in message count and in wall time; a timeout ends the scenario and
// reports the partial numbers with status "timeout"):
//
//   - fan-in-qos0, fan-in-qos1: 4 publishers, 64-byte payloads, 1 subscriber on bench/#.
//     QoS 1 publishers keep a window of in-flight messages and wait for PUBACKs.
//   - fan-out-qos0, fan-out-qos1: 1 publisher, 10 subscribers on bench/#.
//   - backlog: 1,000 persistent sessions (clean session 0) subscribe QoS 1 to their own topic and
//     disconnect; one publisher sends 150 QoS 1 messages to each; all reconnect and drain.
//   - idle: the broker's RSS right after start, and the RSS delta per idle connected client.
//   - clean-qos1, durable-qos1: 16 QoS 1 publishers (64-byte payloads) and 4 subscribers, each
//     subscriber on its own quarter of the publishers' topics (bench/J/+); clean sessions in the
//     first, persistent ones (clean session 0, online and reading) in the second, which runs
//     Mosquitto with persistence on. The report divides durable by clean throughput.
//   - disk-bytes-64, disk-bytes-1024: durable-qos1's traffic with 64-byte and 1 KiB payloads,
//     reporting the bytes the broker wrote to disk per delivered message beside the limit
//     2 x (payload + topic + 64).
//   - recovery: 10,000 persistent sessions with 100 queued 256-byte QoS 1 messages each (filled
//     by 16 publishers while the sessions are offline); the broker is stopped (edgebroker with
//     SIGKILL, a crash; Mosquitto with SIGTERM, since it persists only when it shuts down or at
//     its autosave interval), started again on the same data and address, and the times from
//     exec to the first accepted TCP connection and to the first successful CONNACK of a fresh
//     client are measured (polled every 2 ms). Then 100 of the sessions reconnect: Session
//     Present and their messages are counted. Sizes are flags (-recovery-*).
//
// -scenarios takes names or dash prefixes of names: -scenarios disk-bytes,recovery.
//
// -rounds N runs the chosen scenarios N times, round after round, each round every broker in
// turn. Rows name their round, ours/mosquitto ratios pair rows of one round, and each target
// is measured within each round and checked on the median of the rounds: on a shared machine
// one run of a second-long scenario moves by 20-30%, a ratio of two by 0.1.
//
// edgebroker runs as `PATH --listen 127.0.0.1:PORT --data-dir DIR --max-queued-messages 100`
// followed by -edgebroker-args (default --fsync=always); Mosquitto with a generated
// configuration: the same queue limit, max_inflight_messages 20, and persistence off except in
// the durable scenarios (durable-qos1, disk-bytes-*, recovery), where it saves to its scratch
// directory at its default autosave interval and at shutdown.
//
// Disk figures come from /proc/PID/io of the broker, read before the first PUBLISH and after
// the drain: write_bytes less cancelled_write_bytes (bytes sent to storage, counted per page
// dirtied) and syscw (write-family calls, sockets included). The fsync count is not visible
// there: in those scenarios our broker, started with --sys-interval 100ms, is asked for its
// own count of its log's fsyncs ($SYS/broker/disk/fsyncs, retained) before the first PUBLISH
// and after the drain, each time a few intervals after the last activity, so that the count
// has caught up (exact under --fsync=always, the default here).
//
// Every broker process is started fresh for each scenario, so its VmHWM (peak RSS, read from
// /proc/PID/status) belongs to that scenario alone. It is read a second after the scenario
// ends, so that the broker's handling of the clients' leaving counts.
//
// Every payload starts with the publisher id (4 bytes, big endian) and a sequence number (8
// bytes, big endian); each subscriber keeps a Tracker per connection that counts unique,
// duplicate and out-of-order arrivals per publisher. "lost" is what was sent (PUBLISH written,
// whether or not acknowledged) minus what arrived at least once, summed over subscribers.
//
// The MQTT client (client.go) is deliberately lean: MQTT 3.1.1 only, written on package codec,
// no reconnects, no retries. Processes are started with os/exec and stopped by their own PID
// (SIGTERM, then SIGKILL after a grace period); nothing else is ever signalled.
//
// A broker whose path is empty or does not exist is reported as "not run".
package main
