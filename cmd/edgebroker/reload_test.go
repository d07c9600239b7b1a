package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"edgebroker/board"
	"edgebroker/session"
)

func TestReloadAppliesLiveSettingsAndKeepsFixedOnes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "edgebroker.conf")
	os.WriteFile(file, []byte("max-queued-messages 50\nlisten 127.0.0.1:1\n"), 0o600)
	oldArgs := os.Args
	t.Cleanup(func() { os.Args = oldArgs })
	os.Args = []string{"edgebroker", "--config", file}
	cur, err := parseConfig(os.Args[1:])
	if err != nil {
		t.Fatal(err)
	}
	p, _ := board.Lookup("generic")
	applyProfile(cur, p)
	b, err := session.New(cur.broker)
	if err != nil {
		t.Fatal(err)
	}
	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	os.WriteFile(file, []byte("max-queued-messages 7\nqueue-overflow drop-oldest\nlog-level debug\nlisten 127.0.0.1:2\n"), 0o600)
	next := reload(cur, p, b, level, log)
	if next.broker.MaxQueued != 7 || next.broker.Overflow != session.DropOldest || level.Level() != slog.LevelDebug {
		t.Fatalf("reloadable settings not applied: queued %d overflow %s level %v", next.broker.MaxQueued, next.broker.Overflow, level.Level())
	}
	if next.listen[0] != "127.0.0.1:1" {
		t.Fatalf("listen changed by a reload to %v", next.listen)
	}

	os.WriteFile(file, []byte("max-queued-messages lots\n"), 0o600)
	if again := reload(next, p, b, level, log); again != next {
		t.Fatal("an invalid file changed the configuration in force")
	}
}
