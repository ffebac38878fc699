package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// isolate gives a test its own local home and hides the environment's NATS settings (a
// developer's nats context included).
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("OPENAGENTS_HOME", home)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, k := range []string{"NATS_URL", "NATS_CREDS", "OPENAGENTS_KEK_FILE", "OPENAGENTS_RELAYS", "OPENAGENTS_NWC_URI", "OPENAGENTS_DEVNET_WALLET"} {
		t.Setenv(k, "")
	}
	return home
}

func TestLocalHomePersistsAcrossInvocations(t *testing.T) {
	home := isolate(t)
	r := must(t, "", "agent", "spawn", "--name", "alice", "--json", "--heartbeat", "3600")
	var sp map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &sp); err != nil {
		t.Fatal(err)
	}
	// Each invocation starts and stops the home's embedded server; the registry is on disk.
	if _, err := os.Stat(filepath.Join(home, "server.json")); !os.IsNotExist(err) {
		t.Fatalf("server.json left behind after the invocation ended: %v", err)
	}
	must(t, nip06Words, "agent", "spawn", "--name", "bob", "--mnemonic-stdin")
	r = must(t, "", "agent", "list", "--json")
	var rows []listRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Name != "alice" || rows[1].Name != "bob" || rows[0].Pubkey != sp["pubkey"] {
		t.Fatalf("list %+v", rows)
	}
	r = must(t, "", "agent", "status", "alice")
	if !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stdout, "heartbeat 3600s") {
		t.Fatalf("status:\n%s", r.stdout)
	}
	// The home's KEK was made once and seals both agents: stop works from a new invocation.
	must(t, "", "agent", "stop", "bob")
	r = must(t, "", "agent", "list")
	if !strings.Contains(r.stdout, "(stopped)") {
		t.Fatalf("list after stop:\n%s", r.stdout)
	}
	if fi, err := os.Stat(filepath.Join(home, "kek")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("home KEK: %v %v", fi, err)
	}
}

func TestLocalHomeSharedWithARunningProcess(t *testing.T) {
	home := isolate(t)
	// The first process holds the home (lock, embedded server, server.json).
	first, err := openHome(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if first.server == nil {
		t.Fatal("first opener did not start the server")
	}
	// A second invocation meanwhile shares the first's server and says so.
	r := must(t, "", "agent", "spawn", "--name", "carol")
	if !strings.Contains(r.stderr, "is in use by process") || !strings.Contains(r.stderr, first.url) {
		t.Fatalf("second invocation did not say it shares the server: %q", r.stderr)
	}
	r = must(t, "", "agent", "list", "--json")
	if !strings.Contains(r.stdout, `"carol"`) {
		t.Fatalf("list through the shared server: %s", r.stdout)
	}
	first.Close()
	if _, err := os.Stat(filepath.Join(home, "server.json")); !os.IsNotExist(err) {
		t.Fatal("server.json not removed when the first process closed the home")
	}
	// Afterwards the next invocation owns the home again and finds what was written through
	// the first's server.
	r = must(t, "", "agent", "list", "--json")
	if !strings.Contains(r.stdout, `"carol"`) || strings.Contains(r.stderr, "in use") {
		t.Fatalf("list after the first process ended: %s %s", r.stdout, r.stderr)
	}
}

func TestLocalHomeLockedWithoutServer(t *testing.T) {
	home := isolate(t)
	// A holder of the lock that serves nothing yet (starting up, or stuck): a clear error.
	f, err := os.OpenFile(filepath.Join(home, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := flock(f); err != nil {
		t.Fatal(err)
	}
	r := cli(t, "", "agent", "list")
	if r.code == 0 || !strings.Contains(r.stderr, "local home busy") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
}

func flock(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) }
