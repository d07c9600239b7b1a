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
	"syscall"
	"time"

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
	"repair":  runRepair,
}

// shutdownTimeout bounds a graceful stop.
const shutdownTimeout = 10 * time.Second

func main() {
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
		fmt.Printf("edgebroker %s (commit %s, %s/%s)\n", version, commit, runtime.GOOS, runtime.GOARCH)
		return
	}
	profile, why, err := resolveBoard(cfg.board)
	if err != nil {
		fmt.Fprintf(os.Stderr, "edgebroker: %v\n", err)
		os.Exit(2)
	}
	applyProfile(cfg, profile)
	tuneRuntime(cfg, profile)
	if err := run(cfg, profile.Name, why); err != nil {
		fmt.Fprintf(os.Stderr, "edgebroker: %v\n", err)
		os.Exit(1)
	}
}

// run serves until SIGTERM or SIGINT, then shuts down gracefully.
func run(cfg *config, boardName, boardReason string) error {
	log := newLogger(cfg)
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
	b, err := session.New(cfg.broker)
	if err != nil {
		return err
	}
	b.Restore(state)
	var lns []net.Listener
	for _, addr := range cfg.listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("listen: %w", err)
		}
		lns = append(lns, ln)
	}
	serveErr := make(chan error, len(lns))
	for _, ln := range lns {
		log.Info("listening", "addr", ln.Addr().String())
		go func() { serveErr <- b.Serve(ln) }()
	}
	log.Info("edgebroker started", "version", version, "board", boardName, "board_reason", boardReason,
		"memory_limit", cfg.memoryLimit, "data_dir", cfg.dataDir,
		"max_queued_messages", cfg.broker.MaxQueued, "max_inflight", cfg.broker.MaxInflight,
		"queue_overflow", cfg.broker.Overflow, "sessions_recovered", len(state.Sessions),
		"durability", durabilityNote(cfg))

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-sigs:
		log.Info("shutting down", "signal", sig.String())
	case err := <-serveErr:
		log.Error("listener failed", "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// newLogger builds the slog logger the flags ask for, writing to stderr.
func newLogger(cfg *config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
