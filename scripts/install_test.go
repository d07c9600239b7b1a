package scripts_test

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tree lists every file and directory under dir as "path mode", sorted.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var list []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		list = append(list, fmt.Sprintf("%s %v", rel, info.Mode()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(list)
	return list
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInstall(t *testing.T) {
	dest := t.TempDir()
	bin := filepath.Join(t.TempDir(), "edgebroker")
	writeFile(t, bin, []byte("version 1\n"), 0o600)
	install := func() {
		t.Helper()
		run(t, exec.Command("./install.sh", dest, "/usr/local", bin))
	}
	install()
	want := []string{
		"etc drwxr-xr-x",
		"etc/edgebroker drwxr-xr-x",
		"etc/edgebroker/edgebroker.conf -rw-r-----",
		"etc/init.d drwxr-xr-x",
		"etc/init.d/edgebroker -rwxr-xr-x",
		"usr drwxr-xr-x",
		"usr/local drwxr-xr-x",
		"usr/local/lib drwxr-xr-x",
		"usr/local/lib/systemd drwxr-xr-x",
		"usr/local/lib/systemd/system drwxr-xr-x",
		"usr/local/lib/systemd/system/edgebroker.service -rw-r--r--",
		"usr/local/lib/sysusers.d drwxr-xr-x",
		"usr/local/lib/sysusers.d/edgebroker.conf -rw-r--r--",
		"usr/local/sbin drwxr-xr-x",
		"usr/local/sbin/edgebroker -rwxr-xr-x",
	}
	if got := tree(t, dest); !slices.Equal(got, want) {
		t.Fatalf("installed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	unit := readString(t, filepath.Join(dest, "usr/local/lib/systemd/system/edgebroker.service"))
	if !strings.Contains(unit, "\nExecStart=/usr/local/sbin/edgebroker --data-dir") {
		t.Errorf("the unit does not start the installed binary:\n%s", unit)
	}
	if initScript := readString(t, filepath.Join(dest, "etc/init.d/edgebroker")); !strings.Contains(initScript, "\nDAEMON=/usr/local/sbin/edgebroker\n") {
		t.Errorf("the SysV script does not start the installed binary")
	}
	conf := filepath.Join(dest, "etc/edgebroker/edgebroker.conf")
	if readString(t, conf) != readString(t, "edgebroker.conf") {
		t.Errorf("the installed config differs from edgebroker.conf")
	}

	// Again, with a new binary and an edited config: the binary is replaced, the settings
	// kept, and nothing else changes.
	writeFile(t, bin, []byte("version 2\n"), 0o600)
	writeFile(t, conf, []byte("listen 0.0.0.0:1883\n"), 0o640)
	install()
	if got := tree(t, dest); !slices.Equal(got, want) {
		t.Errorf("second install:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := readString(t, filepath.Join(dest, "usr/local/sbin/edgebroker")); got != "version 2\n" {
		t.Errorf("binary after reinstall = %q", got)
	}
	if got := readString(t, conf); got != "listen 0.0.0.0:1883\n" {
		t.Errorf("reinstall overwrote the edited config: %q", got)
	}
}

func TestInstallRefusesBadArguments(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "edgebroker")
	writeFile(t, bin, []byte("x"), 0o755)
	for _, args := range [][]string{
		{t.TempDir(), "/usr"},                   // no binary
		{t.TempDir(), "usr", bin},               // relative prefix
		{t.TempDir(), "/usr", bin + ".missing"}, // binary missing
	} {
		dest := args[0]
		if out, err := exec.Command("./install.sh", args...).CombinedOutput(); err == nil {
			t.Errorf("install.sh %q succeeded:\n%s", args, out)
		}
		if got := tree(t, dest); len(got) != 0 {
			t.Errorf("install.sh %q left %v", args, got)
		}
	}
}
