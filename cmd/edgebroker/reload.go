package main

import (
	"log/slog"
	"os"
	"slices"

	"edgebroker/board"
	"edgebroker/session"
)

// fixedSettings are the settings a reload cannot change: each is compared between the running
// configuration and the reloaded one, and a change is refused with a log line.
var fixedSettings = []struct {
	name string
	same func(a, b *config) bool
}{
	{"listen", func(a, b *config) bool { return slices.Equal(a.listen, b.listen) }},
	{"data-dir", func(a, b *config) bool { return a.dataDir == b.dataDir }},
	{"board", func(a, b *config) bool { return a.board == b.board }},
	{"fsync", func(a, b *config) bool { return a.fsync == b.fsync }},
	{"fsync-interval", func(a, b *config) bool { return a.fsyncEvery == b.fsyncEvery }},
	{"wal-segment-size", func(a, b *config) bool { return a.segmentSize == b.segmentSize }},
	{"log-format", func(a, b *config) bool { return a.logFormat == b.logFormat }},
	{"max-inflight", func(a, b *config) bool { return a.broker.MaxInflight == b.broker.MaxInflight }},
	{"max-packet-size", func(a, b *config) bool { return a.broker.MaxPacketSize == b.broker.MaxPacketSize }},
	{"session-expiry-max", func(a, b *config) bool { return a.broker.SessionExpiryMax == b.broker.SessionExpiryMax }},
	{"sys-interval", func(a, b *config) bool { return a.broker.SysInterval == b.broker.SysInterval }},
	{"allow-anonymous", func(a, b *config) bool { return a.allowAnonymous == b.allowAnonymous }},
	{"password-file", func(a, b *config) bool { return a.passwordFile == b.passwordFile }},
	{"acl-file", func(a, b *config) bool { return a.aclFile == b.aclFile }},
	{"tls-listen", func(a, b *config) bool { return slices.Equal(a.tlsListen, b.tlsListen) }},
	{"tls-cert", func(a, b *config) bool { return a.tlsCert == b.tlsCert && a.tlsKey == b.tlsKey }},
	{"tls-client-ca", func(a, b *config) bool { return a.tlsClientCA == b.tlsClientCA }},
	{"tls-cert-as-username", func(a, b *config) bool { return a.certAsUsername == b.certAsUsername }},
	{"sys-per-client", func(a, b *config) bool { return a.broker.SysPerClient == b.broker.SysPerClient }},
}

// reload re-reads the command line and the config file (SIGHUP) and applies what can change
// while running: queue limits and overflow policy, QoS 0 queueing, the slow-consumer and
// connect timeouts, the keep-alive cap, the log level and the memory limit. It returns the
// configuration now in force; a bad file changes nothing.
func reload(cur *config, p board.Profile, b *session.Broker, level *slog.LevelVar, log *slog.Logger) *config {
	next, err := parseConfig(os.Args[1:])
	if err != nil {
		log.Error("reload refused: the configuration is invalid; the running one stays", "err", err)
		return cur
	}
	applyProfile(next, p)
	for _, f := range fixedSettings {
		if !f.same(cur, next) {
			log.Warn("setting cannot change while running: restart to apply it", "setting", f.name)
		}
	}
	o := next.broker
	err = b.Reload(session.Reloadable{MaxQueued: o.MaxQueued, MaxQueuedBytes: o.MaxQueuedBytes, MemoryLimit: o.MemoryLimit,
		Overflow: o.Overflow, QueueQoS0: o.QueueQoS0,
		SlowConsumerTimeout: o.SlowConsumerTimeout, MaxKeepAlive: o.MaxKeepAlive, ConnectTimeout: o.ConnectTimeout})
	if err != nil {
		log.Error("reload refused", "err", err)
		return cur
	}
	// Keep the fixed settings as they run; take the reloadable ones.
	kept := *cur
	kept.broker.MaxQueued, kept.broker.Overflow, kept.broker.QueueQoS0 = o.MaxQueued, o.Overflow, o.QueueQoS0
	kept.broker.MaxQueuedBytes, kept.broker.MemoryLimit = o.MaxQueuedBytes, o.MemoryLimit
	kept.maxQueuedBytes = next.maxQueuedBytes
	kept.broker.SlowConsumerTimeout, kept.broker.MaxKeepAlive, kept.broker.ConnectTimeout = o.SlowConsumerTimeout, o.MaxKeepAlive, o.ConnectTimeout
	kept.logLevel, kept.memoryLimit = next.logLevel, next.memoryLimit
	level.Set(kept.logLevel)
	setRuntimeLimit(kept.memoryLimit)
	log.Info("configuration reloaded", "max_queued_messages", o.MaxQueued, "queue_overflow", o.Overflow,
		"memory_limit", kept.memoryLimit, "log_level", kept.logLevel.String())
	return &kept
}
