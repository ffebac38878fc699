package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openagents/runtime/pkg/devnet"
	"github.com/openagents/runtime/pkg/nipsa"
)

// cliBinary is the openagents binary: make test's (OPENAGENTS_BIN), else built here.
func cliBinary(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("OPENAGENTS_BIN"); dir != "" {
		if p := filepath.Join(dir, "openagents"); fileExists(p) {
			return p
		}
	}
	p := filepath.Join(t.TempDir(), "openagents")
	out, err := exec.Command("go", "build", "-o", p, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return p
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// A long-running `openagents run` holds the local home: it ticks on heartbeats, a second
// invocation meanwhile shares its NATS server (and says so), and SIGINT stops it cleanly.
func TestRunServesHeartbeatsAndSharesItsHome(t *testing.T) {
	bin := cliBinary(t)
	d := testDevnet(t, devnet.Options{})
	uri := nwcWallet(t, d, "runner", 20_000)
	home := isolate(t)

	cmd := exec.Command(bin, "run", "--mnemonic-stdin", "--name", "ticker-bot", "--relay", d.Relay.URL(), "--heartbeat", "1",
		"--min-tick-interval", "100ms", "--tick-timeout", "15s", "--json")
	cmd.Env = append(os.Environ(), "OPENAGENTS_NWC_URI="+uri)
	cmd.Stdin = strings.NewReader(nip06Words)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	ticks := make(chan tickReport, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var rep tickReport
			if json.Unmarshal(sc.Bytes(), &rep) == nil {
				ticks <- rep
			}
		}
		exited <- cmd.Wait()
	}()
	for n := 0; n < 2; n++ {
		select {
		case rep := <-ticks:
			if rep.Status != nipsa.TickSuccess || rep.Agent != "ticker-bot" || rep.CostSats != 10 {
				t.Fatalf("heartbeat tick %+v\nstderr: %s", rep, stderr.String())
			}
		case err := <-exited:
			t.Fatalf("run exited: %v\nstderr: %s", err, stderr.String())
		case <-time.After(20 * time.Second):
			t.Fatalf("no heartbeat ticks\nstderr: %s", stderr.String())
		}
	}
	if !fileExists(filepath.Join(home, "server.json")) {
		t.Fatal("run holds the home but wrote no server.json")
	}
	r := must(t, "", "agent", "list", "--json")
	if want := fmt.Sprintf("in use by process %d", cmd.Process.Pid); !strings.Contains(r.stderr, want) {
		t.Fatalf("second invocation: stderr %q lacks %q", r.stderr, want)
	}
	var rows []listRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 1 || rows[0].Name != "ticker-bot" || rows[0].Ticks < 2 {
		t.Fatalf("list through run's server: %s %v", r.stdout, err)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("run after SIGINT: %v\nstderr: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop on SIGINT")
	}
	if fileExists(filepath.Join(home, "server.json")) {
		t.Fatal("server.json left behind")
	}
	if s := stderr.String(); strings.Contains(s, uri) || strings.Contains(s, nip06Secret) {
		t.Fatal("run printed a secret")
	}
	// The home is free again: the next invocation serves it itself.
	r = must(t, "", "agent", "status", "ticker-bot")
	if strings.Contains(r.stderr, "in use") || !strings.Contains(r.stdout, "ticker-bot") {
		t.Fatalf("status after run: %s %s", r.stdout, r.stderr)
	}
}
