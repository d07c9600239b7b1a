// Command edgebroker is an MQTT 3.1, 3.1.1 and 5.0 broker for edge gateways.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"edgebroker/board"
	"edgebroker/session"
	"edgebroker/session/store"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

// subcommands are the commands besides serving.
var subcommands = map[string]func(args []string) error{
	"board":   runBoard,
	"inspect": runInspect,
	"passwd":  runPasswd,
	"repair":  runRepair,
}

// shutdownTimeout bounds a graceful stop.
const shutdownTimeout = 10 * time.Second

func main() {
	// The broker serves no heap profiles: sampling for them would only cost memory.
	runtime.MemProfileRate = 0
	if len(os.Args) > 1 {
		if sub, ok := subcommands[os.Args[1]]; ok {
			if err := sub(os.Args[2:]); err != nil {
				fmt.Fprintf(os.Stderr, "edgebroker %s: %v\n", os.Args[1], err)
				os.Exit(2)
			}
			return
		}
	}
	cfg, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "edgebroker: %v (see edgebroker --help)\n", err)
		os.Exit(2)
	}
	if cfg.version {
		fmt.Printf("edgebroker %s (commit %s, %s)\n", version, commit, target())
		return
	}
	profile, why, err := resolveBoard(cfg.board)
	if err != nil {
		fmt.Fprintf(os.Stderr, "edgebroker: %v\n", err)
		os.Exit(2)
	}
	applyProfile(cfg, profile)
	tuneRuntime(cfg, profile)
	if err := run(cfg, profile, why); err != nil {
		fmt.Fprintf(os.Stderr, "edgebroker: %v\n", err)
		os.Exit(1)
	}
}

// target names the platform the binary was built for, with its GOARM or GOMIPS setting.
func target() string {
	t := runtime.GOOS + "/" + runtime.GOARCH
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "GOARM" || s.Key == "GOMIPS" {
				t += " " + s.Key + "=" + s.Value
			}
		}
	}
	return t
}

// run serves until SIGTERM or SIGINT, then shuts down gracefully; SIGHUP reloads the settings
// that can change while running.
func run(cfg *config, profile board.Profile, boardReason string) error {
	level := new(slog.LevelVar)
	level.Set(cfg.logLevel)
	log := newLogger(cfg, level)
	cfg.broker.Logger = log
	if err := os.MkdirAll(cfg.dataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w (choose another with --data-dir)", err)
	}
	warnVolatileDataDir(log, cfg.dataDir)
	lock, err := lockDataDir(cfg.dataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	st, state, err := store.Open(storeOptions(cfg, log))
	if err != nil {
		return fmt.Errorf("opening the store in %s: %w", cfg.dataDir, err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	cfg.broker.Store = st
	cfg.broker.Version = version
	acc, err := newAccess(cfg)
	if err != nil {
		return err
	}
	if acc != nil {
		cfg.broker.Auth = acc
	}
	cfg.broker.CertAsUsername = cfg.certAsUsername
	cfg.broker.PeerName = peerCommonName
	tlsSet, err := newTLSSettings(cfg)
	if err != nil {
		return err
	}
	b, err := session.New(cfg.broker)
	if err != nil {
		return err
	}
	recovered := len(state.Sessions)
	b.Restore(state) // consumes state
	lns, err := listen(cfg, tlsSet)
	if err != nil {
		return err
	}
	serveErr := make(chan error, len(lns))
	for _, ln := range lns {
		log.Info("listening", "addr", ln.Addr().String())
		go func() { serveErr <- b.Serve(ln) }()
	}
	log.Info("edgebroker started", "version", version, "board", profile.Name, "board_reason", boardReason,
		"memory_limit", cfg.memoryLimit, "data_dir", cfg.dataDir,
		"max_queued_messages", cfg.broker.MaxQueued, "max_inflight", cfg.broker.MaxInflight,
		"queue_overflow", cfg.broker.Overflow, "sessions_recovered", recovered,
		"durability", durabilityNote(cfg))

	notify := newNotifier()
	defer notify.close()
	notify.send("READY=1") // recovery is done and the listeners accept
	stopWatchdog := make(chan struct{})
	defer close(stopWatchdog)
	go notify.watchdog(stopWatchdog)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
wait:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				notify.send("RELOADING=1")
				cfg = reload(cfg, profile, b, level, log)
				reloadFiles(acc, tlsSet, log)
				notify.send("READY=1")
				continue
			}
			log.Info("shutting down", "signal", sig.String())
		case err := <-serveErr:
			log.Error("listener failed", "err", err)
		}
		break wait
	}
	notify.send("STOPPING=1")
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// listen opens the plain and TLS listeners.
func listen(cfg *config, tlsSet *tlsSettings) ([]net.Listener, error) {
	var lns []net.Listener
	fail := func(err error) ([]net.Listener, error) {
		for _, l := range lns {
			l.Close()
		}
		return nil, fmt.Errorf("listen: %w", err)
	}
	for _, addr := range cfg.listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fail(err)
		}
		lns = append(lns, ln)
	}
	for _, addr := range cfg.tlsListen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fail(err)
		}
		lns = append(lns, tlsListener(ln, tlsSet))
	}
	return lns, nil
}

// reloadFiles reads the password, ACL and TLS files again (SIGHUP); a file that fails to load
// keeps the old one in force.
func reloadFiles(acc *access, tlsSet *tlsSettings, log *slog.Logger) {
	if acc != nil {
		if err := acc.load(); err != nil {
			log.Error("password/ACL files not reloaded: the previous ones stay in force", "err", err)
		}
	}
	if tlsSet != nil {
		if err := tlsSet.load(); err != nil {
			log.Error("TLS certificates not reloaded: the previous ones stay in force", "err", err)
		}
	}
}

// newLogger builds the slog logger the flags ask for, writing to stderr at a level that a
// reload can change.
func newLogger(cfg *config, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
