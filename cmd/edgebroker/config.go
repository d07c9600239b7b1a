package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"edgebroker/session"
	"edgebroker/wal"
)

// config is everything the command line and config file set.
type config struct {
	listen         []string
	dataDir        string
	board          string          // "auto" or a profile name
	memoryLimit    uint64          // 0: from the board profile
	maxQueuedBytes uint64          // unset: from the board profile; 0: no limit
	set            map[string]bool // settings given on the command line or in the config file
	allowAnonymous bool
	passwordFile   string
	aclFile        string
	tlsListen      []string
	tlsCert        string
	tlsKey         string
	tlsClientCA    string
	certAsUsername bool
	fsync          wal.SyncPolicy
	fsyncEvery     time.Duration
	segmentSize    uint64 // 0: from the board profile
	logLevel       slog.Level
	logFormat      string
	broker         session.Options
	version        bool
	finish         func() error // converts parsed flag values into their typed fields
}

// listFlag is a repeatable string flag.
type listFlag struct {
	vals *[]string
	set  bool
}

func (l *listFlag) String() string {
	if l.vals == nil {
		return ""
	}
	return strings.Join(*l.vals, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.set { // the first use replaces the default
		*l.vals = nil
		l.set = true
	}
	*l.vals = append(*l.vals, v)
	return nil
}

// sizeFlag is a byte size with an optional unit: 512, 64KiB, 16MiB, 1GiB (also KB, MB, GB as 1000s).
type sizeFlag struct {
	val *uint64
	max uint64
}

func (s sizeFlag) String() string {
	if s.val == nil {
		return "0"
	}
	return strconv.FormatUint(*s.val, 10)
}

func (s sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	if s.max > 0 && n > s.max {
		return fmt.Errorf("%d is larger than the maximum %d", n, s.max)
	}
	*s.val = n
	return nil
}

var sizeUnits = []struct {
	suffix string
	mult   uint64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// maxBudget bounds byte budgets so that they fit an int64 with room to spare.
const maxBudget = 1 << 50

// parseSize parses a byte size with an optional unit.
func parseSize(v string) (uint64, error) {
	num, mult := strings.TrimSpace(v), uint64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n > math.MaxUint64/mult {
		return 0, fmt.Errorf("invalid size %q (want a number with an optional unit such as 64KiB or 16MiB)", v)
	}
	return n * mult, nil
}

// levelFlag is a log level name.
type levelFlag struct{ val *slog.Level }

func (l levelFlag) String() string {
	if l.val == nil {
		return "info"
	}
	return strings.ToLower(l.val.String())
}

func (l levelFlag) Set(v string) error {
	return l.val.UnmarshalText([]byte(v))
}

// flagSetFor returns an empty flag set that reports errors instead of exiting.
func flagSetFor(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// newFlagSet declares every flag of the serve command on cfg, which holds the defaults.
func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flagSetFor("edgebroker")
	o := &cfg.broker
	fs.Var(&listFlag{vals: &cfg.listen}, "listen", "`address` to accept MQTT on (repeatable)")
	fs.StringVar(&cfg.dataDir, "data-dir", cfg.dataDir, "`directory` for the broker's persistent state")
	fs.BoolVar(&cfg.version, "version", false, "print the version and exit")
	fs.Var(levelFlag{&cfg.logLevel}, "log-level", "log `level`: debug, info, warn or error")
	fs.StringVar(&cfg.logFormat, "log-format", cfg.logFormat, "log `format`: text or json")
	fs.IntVar(&o.MaxQueued, "max-queued-messages", o.MaxQueued, "messages queued per session beyond the in-flight window")
	fs.Var(sizeFlag{val: &cfg.maxQueuedBytes, max: maxBudget}, "max-queued-bytes", "bytes of message bodies queued per session, e.g. 1MiB (default from the board profile; 0 = no limit)")
	fs.Func("queue-overflow", "what a full queue does when it cannot slow the publisher: drop-new or drop-oldest (default drop-new)",
		func(v string) (err error) { o.Overflow, err = session.ParseOverflow(v); return err })
	fs.BoolVar(&o.QueueQoS0, "queue-qos0", o.QueueQoS0, "queue QoS 0 messages for offline persistent sessions")
	fs.IntVar(&o.MaxInflight, "max-inflight", o.MaxInflight, "unacknowledged QoS 1/2 messages per client in each direction")
	maxPacket := uint64(o.MaxPacketSize)
	fs.Var(sizeFlag{val: &maxPacket, max: 268435455 + 5}, "max-packet-size", "largest packet accepted, e.g. 1MiB")
	fs.DurationVar(&o.SessionExpiryMax, "session-expiry-max", o.SessionExpiryMax, "lifetime of MQTT 3 persistent sessions and cap for MQTT 5 (0 = never expire)")
	fs.DurationVar(&o.SlowConsumerTimeout, "slow-consumer-timeout", o.SlowConsumerTimeout, "how long a subscriber may make no progress before its full queue stops slowing publishers")
	maxKeepAlive := uint(o.MaxKeepAlive)
	fs.UintVar(&maxKeepAlive, "max-keepalive", maxKeepAlive, "largest keep-alive in seconds an MQTT 5 client may use (0 = no limit)")
	fs.DurationVar(&o.ConnectTimeout, "connect-timeout", o.ConnectTimeout, "close sockets that send no CONNECT within this time")
	fs.StringVar(&cfg.board, "board", cfg.board, "hardware `profile` for defaults: auto (detect) or "+profileNames())
	fs.Var(sizeFlag{val: &cfg.memoryLimit, max: maxBudget}, "memory-limit", "memory budget, e.g. 16MiB (default from the board profile)")
	fs.Func("fsync", "when acknowledged data reaches the disk: always (acknowledge only what is fsynced), interval or never (UNSAFE: a power cut loses acknowledged messages)",
		func(v string) (err error) { cfg.fsync, err = wal.ParseSyncPolicy(v); return err })
	fs.DurationVar(&cfg.fsyncEvery, "fsync-interval", cfg.fsyncEvery, "time between fsyncs with --fsync=interval")
	fs.Var(sizeFlag{val: &cfg.segmentSize, max: 1 << 30}, "wal-segment-size", "size of write-ahead log segments, e.g. 4MiB (default from the board profile)")
	fs.DurationVar(&o.SysInterval, "sys-interval", o.SysInterval, "how often to publish counters under $SYS/broker/ (0 = never)")
	fs.BoolVar(&o.SysPerClient, "sys-per-client", o.SysPerClient, "also publish each session's queue depth and drops under $SYS/broker/clients/<id>/")
	fs.IntVar(&o.MaxConnections, "max-connections", o.MaxConnections, "refuse connections beyond this many (0 = no limit)")
	fs.IntVar(&o.MaxTopicLength, "max-topic-length", o.MaxTopicLength, "longest topic name or filter a client may use, in bytes (0 = 65535)")
	fs.IntVar(&o.MaxTopicLevels, "max-topic-levels", o.MaxTopicLevels, "most levels in a topic name or filter (0 = no limit)")
	fs.IntVar(&o.MaxSubscriptions, "max-subscriptions", o.MaxSubscriptions, "most subscriptions per session (0 = no limit)")
	fs.Float64Var(&o.PublishRate, "max-publish-rate", o.PublishRate, "PUBLISH packets per second per client; faster clients are not read from (0 = no limit)")
	fs.BoolVar(&cfg.allowAnonymous, "allow-anonymous", false, "let clients without a user name in when a password file is set, and listen beyond loopback without one")
	fs.StringVar(&cfg.passwordFile, "password-file", "", "Mosquitto-format password `file` (edgebroker passwd FILE USER writes one)")
	fs.StringVar(&cfg.aclFile, "acl-file", "", "Mosquitto-format ACL `file`: who may publish and subscribe to what")
	fs.Var(&listFlag{vals: &cfg.tlsListen}, "tls-listen", "`address` to accept MQTT over TLS on (repeatable)")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "server certificate `file` (PEM) for --tls-listen")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "server private key `file` (PEM) for --tls-listen")
	fs.StringVar(&cfg.tlsClientCA, "tls-client-ca", "", "CA `file` (PEM): require client certificates it signed")
	fs.BoolVar(&cfg.certAsUsername, "tls-cert-as-username", false, "use the client certificate's common name as the user name")
	fs.String("config", "", "read settings from `file`: one 'name value' per line, flags win")
	// Typed values that need conversion after parsing.
	cfg.finish = func() error {
		if maxKeepAlive > 65535 {
			return fmt.Errorf("invalid value %d for flag -max-keepalive: at most 65535", maxKeepAlive)
		}
		o.MaxKeepAlive = uint16(maxKeepAlive)
		o.MaxPacketSize = uint32(maxPacket)
		return nil
	}
	return fs
}

// parseConfig parses args (without the program name) and the config file they name. Flags
// given on the command line win over the file.
func parseConfig(args []string) (*config, error) {
	cfg := &config{
		listen:     []string{"127.0.0.1:1883"},
		dataDir:    "/var/lib/edgebroker",
		logLevel:   slog.LevelInfo,
		logFormat:  "text",
		board:      "auto",
		fsyncEvery: time.Second,
		broker:     session.DefaultOptions(),
		set:        map[string]bool{},
	}
	fs := newFlagSet(cfg)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { cfg.set[f.Name] = true })
	if file := fs.Lookup("config").Value.String(); file != "" {
		if err := applyConfigFile(fs, file, cfg.set); err != nil {
			return nil, err
		}
	}
	if err := cfg.finish(); err != nil {
		return nil, err
	}
	if err := checkTLSFlags(cfg); err != nil {
		return nil, err
	}
	if err := checkExposure(cfg); err != nil {
		return nil, err
	}
	if cfg.fsyncEvery <= 0 {
		return nil, fmt.Errorf("invalid value %v for flag -fsync-interval: must be positive", cfg.fsyncEvery)
	}
	if cfg.logFormat != "text" && cfg.logFormat != "json" {
		return nil, fmt.Errorf("invalid value %q for flag -log-format: want text or json", cfg.logFormat)
	}
	return cfg, nil
}

// applyConfigFile sets every flag named in file that the command line did not set, and
// records it in set.
func applyConfigFile(fs *flag.FlagSet, file string, set map[string]bool) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		name, value, _ := strings.Cut(text, " ")
		name, value = strings.TrimPrefix(name, "--"), strings.TrimSpace(value)
		if name == "config" || fs.Lookup(name) == nil {
			return fmt.Errorf("config %s:%d: unknown setting %q", file, line, name)
		}
		if set[name] {
			continue // the command line wins
		}
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("config %s:%d: %s: %v", file, line, name, err)
		}
		set[name] = true
	}
	return sc.Err()
}

// checkTLSFlags checks that the TLS settings come as a usable set.
func checkTLSFlags(cfg *config) error {
	if len(cfg.tlsListen) == 0 {
		if cfg.tlsCert != "" || cfg.tlsKey != "" || cfg.tlsClientCA != "" || cfg.certAsUsername {
			return errors.New("--tls-cert, --tls-key, --tls-client-ca and --tls-cert-as-username need --tls-listen")
		}
		return nil
	}
	if !tlsBuilt {
		return errors.New("--tls-listen: this build has no TLS: use the edgebroker-linux-<arch>-tls binary")
	}
	if cfg.tlsCert == "" || cfg.tlsKey == "" {
		return errors.New("--tls-listen needs --tls-cert and --tls-key")
	}
	if cfg.certAsUsername && cfg.tlsClientCA == "" {
		return errors.New("--tls-cert-as-username needs --tls-client-ca (client certificates must be verified)")
	}
	return nil
}
