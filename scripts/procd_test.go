package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testUCI is an /etc/config/edgebroker that sets every mapped option away from its default.
const testUCI = `# test settings
config edgebroker 'main'
	option enabled '1'
	list listen '127.0.0.1:18830'
	list listen "[::1]:18831"
	option data_dir '/srv/test broker'
	option board 'openwrt-64m'
	option fsync 'interval'
	option fsync_interval '2s'
	option max_inflight '8'
	option session_expiry_max '24h'
	option queue_qos0 '1'
	option max_queued_messages '250'
	option queue_overflow 'drop-oldest'
	option memory_limit '24MiB'
	option log_level 'debug'
	# an empty option is left out
	option connect_timeout ''
`

// procdRoot returns a chroot with the procd init script, the stub rc.common and uci as the
// UCI file.
func procdRoot(t *testing.T, uci string) string {
	t.Helper()
	root := fakeRoot(t)
	copyFile(t, "testdata/rc.common", filepath.Join(root, "etc/rc.common"), 0o755)
	copyFile(t, "openwrt/edgebroker.init", filepath.Join(root, "etc/init.d/edgebroker"), 0o755)
	writeFile(t, filepath.Join(root, "etc/config/edgebroker"), []byte(uci), 0o600)
	return root
}

// procdCall is one call recorded by the stub rc.common.
type procdCall struct {
	fn   string
	args []string
}

// procdAction runs /etc/init.d/edgebroker action inside root (through its #! line, as
// procd does) and returns the procd calls it made and the settings file it wrote.
func procdAction(t *testing.T, root, action string) ([]procdCall, string) {
	t.Helper()
	log := filepath.Join(root, "tmp/procd.calls")
	os.Remove(log)
	run(t, inRoot(t, root, "/etc/init.d/edgebroker", action))
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var calls []procdCall
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		calls = append(calls, procdCall{fn: f[0], args: f[1:]})
	}
	settings, _ := os.ReadFile(filepath.Join(root, "var/etc/edgebroker.conf"))
	return calls, string(settings)
}

// commandLine returns the instance's command built by procd_set_param/procd_append_param.
func commandLine(calls []procdCall) []string {
	var cmd []string
	for _, c := range calls {
		if len(c.args) == 0 || c.args[0] != "command" {
			continue
		}
		switch c.fn {
		case "procd_set_param":
			cmd = slices.Clone(c.args[1:])
		case "procd_append_param":
			cmd = append(cmd, c.args[1:]...)
		}
	}
	return cmd
}

// params returns the values given to procd_set_param for every parameter but command.
func params(calls []procdCall) map[string]string {
	p := map[string]string{}
	for _, c := range calls {
		if c.fn == "procd_set_param" && len(c.args) > 0 && c.args[0] != "command" {
			p[c.args[0]] = strings.Join(c.args[1:], " ")
		}
	}
	return p
}

func TestProcdStartMapsUCIToFlags(t *testing.T) {
	root := procdRoot(t, testUCI)
	calls, settings := procdAction(t, root, "start")

	wantCmd := []string{"/usr/sbin/edgebroker", "--config", "/var/etc/edgebroker.conf",
		"--listen", "127.0.0.1:18830", "--listen", "[::1]:18831",
		"--data-dir", "/srv/test broker", "--board", "openwrt-64m", "--fsync", "interval",
		"--fsync-interval", "2s", "--max-inflight", "8", "--session-expiry-max", "24h", "--queue-qos0"}
	if got := commandLine(calls); !slices.Equal(got, wantCmd) {
		t.Errorf("command line:\n got %q\nwant %q", got, wantCmd)
	}
	wantParams := map[string]string{"reload_signal": "HUP", "respawn": "3600 5 5", "stdout": "1", "stderr": "1"}
	if got := params(calls); !maps(got, wantParams) {
		t.Errorf("procd parameters = %v, want %v", got, wantParams)
	}
	var fns []string
	for _, c := range calls {
		fns = append(fns, c.fn)
	}
	wantFns := []string{"procd_open_service", "procd_open_instance", "procd_close_instance", "procd_add_reload_trigger", "procd_close_service"}
	if got := slices.DeleteFunc(fns, func(f string) bool { return strings.HasSuffix(f, "_param") }); !slices.Equal(got, wantFns) {
		t.Errorf("procd calls = %v, want %v", got, wantFns)
	}
	wantSettings := "max-queued-messages 250\nqueue-overflow drop-oldest\nmemory-limit 24MiB\nlog-level debug\n"
	if _, body, _ := strings.Cut(settings, "\n"); body != wantSettings {
		t.Errorf("settings file:\n%s\nwant after its comment line:\n%s", settings, wantSettings)
	}

	// The broker accepts the command line and the settings file: --version makes it parse
	// and check them all, then exit.
	args := commandLine(calls)[1:]
	args[1] = filepath.Join(root, args[1])
	run(t, exec.Command(broker(t), append(args, "--version")...))
}

// TestProcdReload changes a live setting and a flag in turn: a live one rewrites the settings
// file and leaves the command line alone (so procd sends SIGHUP), a flag changes the command
// line (so procd restarts the broker).
func TestProcdReload(t *testing.T) {
	root := procdRoot(t, testUCI)
	startCalls, startSettings := procdAction(t, root, "start")

	writeFile(t, filepath.Join(root, "etc/config/edgebroker"),
		[]byte(strings.Replace(testUCI, "'250'", "'500'", 1)), 0o600)
	calls, settings := procdAction(t, root, "reload")
	if !slices.Equal(commandLine(calls), commandLine(startCalls)) {
		t.Errorf("a queue limit changed the command line:\n%q\n%q", commandLine(startCalls), commandLine(calls))
	}
	if want := strings.Replace(startSettings, "max-queued-messages 250", "max-queued-messages 500", 1); settings != want {
		t.Errorf("settings after reload:\n%s\nwant:\n%s", settings, want)
	}

	writeFile(t, filepath.Join(root, "etc/config/edgebroker"),
		[]byte(strings.Replace(testUCI, "'openwrt-64m'", "'generic'", 1)), 0o600)
	calls, _ = procdAction(t, root, "reload")
	if cmd := commandLine(calls); !slices.Contains(cmd, "generic") {
		t.Errorf("the board change is not on the command line: %q", cmd)
	}
}

func TestProcdDisabled(t *testing.T) {
	root := procdRoot(t, strings.Replace(testUCI, "option enabled '1'", "option enabled '0'", 1))
	calls, _ := procdAction(t, root, "start")
	for _, c := range calls {
		if c.fn == "procd_open_instance" {
			t.Fatalf("enabled '0' still opened an instance: %v", calls)
		}
	}
}

// TestProcdDefaultConfig starts the script on the shipped UCI file: its data directory is
// persistent, and the broker accepts what it maps to.
func TestProcdDefaultConfig(t *testing.T) {
	uci, err := os.ReadFile("openwrt/edgebroker.config")
	if err != nil {
		t.Fatal(err)
	}
	root := procdRoot(t, string(uci))
	calls, _ := procdAction(t, root, "start")
	cmd := commandLine(calls)
	i := slices.Index(cmd, "--data-dir")
	if i < 0 {
		t.Fatalf("no --data-dir in %q", cmd)
	}
	if dir := cmd[i+1]; strings.HasPrefix(dir, "/tmp") || strings.HasPrefix(dir, "/var") {
		t.Errorf("the default data dir %s is on tmpfs on OpenWrt", dir)
	}
	cmd[2] = filepath.Join(root, cmd[2])
	run(t, exec.Command(broker(t), append(cmd[1:], "--version")...))
}

// maps reports whether a and b hold the same entries.
func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestIPKMaintainerScripts runs the .ipk's postinst and prerm on a live system (no
// IPKG_INSTROOT): the service is enabled with its start and stop priorities and restarted,
// then stopped and disabled; and into an image being built.
func TestIPKMaintainerScripts(t *testing.T) {
	root := procdRoot(t, testUCI)
	copyFile(t, "openwrt/postinst", filepath.Join(root, "usr/lib/opkg/info/edgebroker.postinst"), 0o755)
	copyFile(t, "openwrt/prerm", filepath.Join(root, "usr/lib/opkg/info/edgebroker.prerm"), 0o755)
	log := filepath.Join(root, "tmp/procd.calls")
	for _, step := range []struct {
		script string
		want   []string
	}{
		{"postinst", []string{"enable edgebroker 95 10", "stop edgebroker", "procd_open_service edgebroker"}},
		{"prerm", []string{"stop edgebroker", "disable edgebroker"}},
	} {
		os.Remove(log)
		run(t, inRoot(t, root, "/usr/lib/opkg/info/edgebroker."+step.script))
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(readString(t, log)), "\n") {
			got = append(got, strings.ReplaceAll(line, "\t", " "))
		}
		if len(got) < len(step.want) || !slices.Equal(got[:len(step.want)], step.want) {
			t.Errorf("%s made the calls:\n%s\nwant them to begin with:\n%s", step.script, strings.Join(got, "\n"), strings.Join(step.want, "\n"))
		}
		if step.script == "prerm" && len(got) != len(step.want) {
			t.Errorf("prerm made more calls than %v: %v", step.want, got)
		}
	}

	// Installing into an image being built: postinst only enables, prerm does nothing.
	for script, want := range map[string]string{"postinst": "enable edgebroker 95 10", "prerm": ""} {
		os.Remove(log)
		cmd := inRoot(t, root, "/usr/lib/opkg/info/edgebroker."+script)
		cmd.Env = append(os.Environ(), "IPKG_INSTROOT=/")
		run(t, cmd)
		got, _ := os.ReadFile(log)
		if got := strings.ReplaceAll(strings.TrimSpace(string(got)), "\t", " "); got != want {
			t.Errorf("%s with IPKG_INSTROOT made the calls %q, want %q", script, got, want)
		}
	}
}
