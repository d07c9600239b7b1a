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
//
// edgebroker runs as `PATH --listen 127.0.0.1:PORT --data-dir DIR --max-queued-messages 100`
// followed by -edgebroker-args (default --fsync=always); Mosquitto with a generated
// configuration: the same queue limit, persistence off, max_inflight_messages 20.
//
// Every broker process is started fresh for each scenario, so its VmHWM (peak RSS, read from
// /proc/PID/status) belongs to that scenario alone.
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
