package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/devnet"
	"github.com/openagents/runtime/pkg/identity"
	"github.com/openagents/runtime/pkg/nipsa"
)

// nip06Words is the NIP-06 test vector; its key is known.
const (
	nip06Words  = "leader monkey parrot ring guide accident before fence cannon height naive bean"
	nip06Secret = "7f7ff03d123792d6ac594bfa67bf6d0c0ab55b6b1fdb6249303fe861f1ccba9a"
)

// result of one in-process CLI invocation.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the CLI in-process, as a separate invocation would (env via t.Setenv).
func cli(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// must runs the CLI and fails the test unless it exits 0.
func must(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := cli(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("openagents %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// syncBuffer is a log sink shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testLogger logs everything (debug included) to buf, so tests can search every line.
func testLogger(buf io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testDevnet(t *testing.T, o devnet.Options) *devnet.Devnet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Log == nil {
		o.Log = testLogger(io.Discard)
	}
	d, err := devnet.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// relayEvents fetches events matching f from relay.
func relayEvents(t *testing.T, relay string, f nostr.Filter) []*nostr.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pool := nostr.NewSimplePool(ctx)
	defer pool.Close("done")
	var out []*nostr.Event
	for re := range pool.FetchMany(ctx, []string{relay}, f) {
		out = append(out, re.Event)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tickResults returns the parsed TickResults of agent on relay.
func tickResults(t *testing.T, relay, agent string) []nipsa.TickResult {
	t.Helper()
	var out []nipsa.TickResult
	for _, ev := range relayEvents(t, relay, nostr.Filter{Kinds: []int{nipsa.KindTickResult}, Authors: []string{agent}}) {
		tr, err := nipsa.ParseTickResult(ev)
		if err != nil {
			t.Fatalf("TickResult %s does not parse: %v", ev.ID, err)
		}
		out = append(out, tr)
	}
	return out
}

// agentSecret derives the hex secret key of words (NIP-06), to look for it where it must not be.
func agentSecret(t *testing.T, words string) string {
	t.Helper()
	id, err := identity.FromMnemonic(words)
	if err != nil {
		t.Fatal(err)
	}
	return id.SecretKey
}
