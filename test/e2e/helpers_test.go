// Package e2e_test runs the tick pipeline end to end: the four services (as separate processes
// or in-process), the embedded relay, NATS JetStream and devnet Lightning, and checks what ends
// up on the relay and in the ledger.
package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/trajectory"
)

// testLog sends the parts' logs to the test log at warn and above.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

var _ io.Writer = testWriter{}

// eventually calls check until it returns nil or the deadline passes; it fails the test with
// the last error. It is polling of state that converges (events delivered asynchronously to a
// relay), not a sleep standing in for an event.
func eventually(t *testing.T, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	wait := 50 * time.Millisecond
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s: %v", what, within, err)
		}
		time.Sleep(wait)
		wait = min(wait*2, time.Second)
	}
}

// resultWatcher holds one live subscription to every TickResult on a relay and indexes the
// results by the trigger ids they answer.
type resultWatcher struct {
	mu        sync.Mutex
	changed   chan struct{} // closed and replaced whenever a result arrives
	byTrigger map[string]nipsa.TickResult
	bad       []error
}

func watchResults(ctx context.Context, t *testing.T, relayURL string) *resultWatcher {
	t.Helper()
	r, err := nostr.RelayConnect(ctx, relayURL)
	if err != nil {
		t.Fatal(err)
	}
	since := nostr.Timestamp(time.Now().Add(-time.Minute).Unix())
	sub, err := r.Subscribe(ctx, nostr.Filters{{Kinds: []int{nipsa.KindTickResult}, Since: &since}})
	if err != nil {
		t.Fatal(err)
	}
	w := &resultWatcher{changed: make(chan struct{}), byTrigger: map[string]nipsa.TickResult{}}
	go func() {
		for ev := range sub.Events {
			res, err := nipsa.ParseTickResult(ev)
			w.mu.Lock()
			if err != nil {
				w.bad = append(w.bad, fmt.Errorf("TickResult %s: %w", ev.ID, err))
			} else {
				for _, id := range res.Content.Triggers {
					w.byTrigger[id] = res
				}
			}
			close(w.changed)
			w.changed = make(chan struct{})
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { sub.Unsub(); r.Close() })
	return w
}

// await returns the results answering every trigger id, waiting for them until ctx ends.
func (w *resultWatcher) await(ctx context.Context, ids ...string) (map[string]nipsa.TickResult, error) {
	for {
		w.mu.Lock()
		if len(w.bad) > 0 {
			err := errors.Join(w.bad...)
			w.mu.Unlock()
			return nil, err
		}
		out := make(map[string]nipsa.TickResult, len(ids))
		var missing []string
		for _, id := range ids {
			if res, ok := w.byTrigger[id]; ok {
				out[id] = res
			} else {
				missing = append(missing, id)
			}
		}
		ch := w.changed
		w.mu.Unlock()
		if len(missing) == 0 {
			return out, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			w.mu.Lock()
			seen := len(w.byTrigger)
			w.mu.Unlock()
			return out, fmt.Errorf("%d of %d triggers have no TickResult on the relay (first: %s; %d triggers answered in all): %w",
				len(missing), len(ids), missing[0], seen, ctx.Err())
		}
	}
}

// query fetches every event matching f from the relay.
func query(ctx context.Context, r *nostr.Relay, f nostr.Filter) ([]*nostr.Event, error) {
	if f.Limit == 0 {
		f.Limit = 5000
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return r.QuerySync(qctx, f)
}

// agentTicks is what the relay shows of one agent's ticks, checked for consistency.
type agentTicks struct {
	results   map[string]nipsa.TickResult        // by tick id
	sessions  map[string]nipsa.TrajectorySession // by session id
	traj      map[string][]nipsa.TrajectoryEvent // by session id
	payHashes map[string]string                  // tick id -> payment hash of its inference
	state     nipsa.AgentState
}

// fetchTicks reads an agent's TickRequests, TickResults, trajectories and latest AgentState
// from the relay and checks that they hang together: every result has its request, a session
// whose events verify against the result's trajectory_hash, and the state opens with the
// agent's key. It does not judge statuses.
func fetchTicks(ctx context.Context, r *nostr.Relay, pubkey, sk string) (*agentTicks, error) {
	at := &agentTicks{results: map[string]nipsa.TickResult{}, sessions: map[string]nipsa.TrajectorySession{},
		traj: map[string][]nipsa.TrajectoryEvent{}, payHashes: map[string]string{}}
	byKind := map[int][]*nostr.Event{}
	evs, err := query(ctx, r, nostr.Filter{Authors: []string{pubkey}, Kinds: []int{nipsa.KindTickRequest, nipsa.KindTickResult,
		nipsa.KindTrajectorySession, nipsa.KindTrajectoryEvent, nipsa.KindAgentState}})
	if err != nil {
		return nil, err
	}
	for _, ev := range evs {
		byKind[ev.Kind] = append(byKind[ev.Kind], ev)
	}
	requests := map[string]nipsa.TickRequest{} // by event id
	for _, ev := range byKind[nipsa.KindTickRequest] {
		req, err := nipsa.ParseTickRequest(ev)
		if err != nil {
			return nil, err
		}
		if req.Agent != pubkey {
			return nil, fmt.Errorf("TickRequest %s names agent %s", req.TickID, req.Agent)
		}
		requests[ev.ID] = req
	}
	for _, ev := range byKind[nipsa.KindTickResult] {
		res, err := nipsa.ParseTickResult(ev)
		if err != nil {
			return nil, err
		}
		if _, dup := at.results[res.TickID]; dup {
			return nil, fmt.Errorf("two TickResults for tick %s", res.TickID)
		}
		at.results[res.TickID] = res
	}
	for _, ev := range byKind[nipsa.KindTrajectorySession] {
		s, err := nipsa.ParseSession(ev)
		if err != nil {
			return nil, err
		}
		at.sessions[s.SessionID] = s
	}
	for _, ev := range byKind[nipsa.KindTrajectoryEvent] {
		te, err := nipsa.ParseTrajectoryEvent(ev)
		if err != nil {
			return nil, err
		}
		at.traj[te.SessionID] = append(at.traj[te.SessionID], te)
	}
	for tick, res := range at.results {
		req, ok := requests[res.RequestID]
		if !ok {
			return nil, fmt.Errorf("tick %s: its TickRequest %s is not on the relay", tick, res.RequestID)
		}
		if req.TickID != tick {
			return nil, fmt.Errorf("tick %s: request %s is for tick %s", tick, res.RequestID, req.TickID)
		}
		sess, ok := at.sessions[res.Content.Session]
		if !ok {
			return nil, fmt.Errorf("tick %s: session %q not on the relay", tick, res.Content.Session)
		}
		if sess.TickID != tick || sess.TrajectoryHash != res.TrajectoryHash {
			return nil, fmt.Errorf("tick %s: session says tick %s hash %s, result says hash %s", tick, sess.TickID, sess.TrajectoryHash, res.TrajectoryHash)
		}
		evs := at.traj[sess.SessionID]
		if len(evs) != sess.TotalEvents {
			return nil, fmt.Errorf("tick %s: %d of %d trajectory events on the relay", tick, len(evs), sess.TotalEvents)
		}
		if err := trajectory.Verify(evs, res.TrajectoryHash); err != nil {
			return nil, fmt.Errorf("tick %s: %w", tick, err)
		}
		for _, te := range evs {
			var c struct {
				Tool   string `json:"tool"`
				Output struct {
					PaymentHash string `json:"payment_hash"`
				} `json:"output"`
			}
			if te.Step == nipsa.StepToolResult && json.Unmarshal([]byte(te.Content), &c) == nil && c.Tool == "inference" && c.Output.PaymentHash != "" {
				at.payHashes[tick] = c.Output.PaymentHash
			}
		}
	}
	states := byKind[nipsa.KindAgentState]
	if len(states) != 1 {
		return nil, fmt.Errorf("%d AgentState events on the relay, want the latest one only", len(states))
	}
	if at.state, err = nipsa.Open(sk, states[0]); err != nil {
		return nil, fmt.Errorf("AgentState does not open with the agent's key: %w", err)
	}
	return at, nil
}

// payments returns the transfers out of account, by payment hash.
func payments(l *devln.Ledger, account string) map[string]devln.Transfer {
	out := map[string]devln.Transfer{}
	for _, tr := range l.Transfers() {
		if tr.From == account {
			out[tr.PaymentHash] = tr
		}
	}
	return out
}

// checkPaidTicks checks an agent's ticks against the ledger: every successful tick paid the
// provider exactly price, once, and nothing else left the agent's account. It returns the msat
// spent.
func checkPaidTicks(at *agentTicks, l *devln.Ledger, account, providerAccount string, priceSats int64) (int64, error) {
	paid := payments(l, account)
	success := 0
	for tick, res := range at.results {
		if res.Status != nipsa.TickSuccess {
			continue
		}
		success++
		h := at.payHashes[tick]
		tr, ok := paid[h]
		switch {
		case h == "":
			return 0, fmt.Errorf("tick %s: no payment hash in its trajectory", tick)
		case !ok:
			return 0, fmt.Errorf("tick %s: payment %s is not in the ledger", tick, h)
		case tr.To != providerAccount || tr.AmountMsat != priceSats*1000:
			return 0, fmt.Errorf("tick %s: paid %d msat to %s, want %d to %s", tick, tr.AmountMsat, tr.To, priceSats*1000, providerAccount)
		case res.Content.CostSats != priceSats:
			return 0, fmt.Errorf("tick %s: cost_sats %d, want %d", tick, res.Content.CostSats, priceSats)
		}
	}
	if len(paid) != success {
		hashes := slices.Collect(func(yield func(string) bool) {
			for h, tr := range paid {
				if !yield(fmt.Sprintf("%s->%s %d", h[:8], tr.To, tr.AmountMsat)) {
					return
				}
			}
		})
		return 0, fmt.Errorf("%d payments left the account for %d successful ticks: %v", len(paid), success, hashes)
	}
	var spent int64
	for _, tr := range paid {
		spent += tr.AmountMsat
	}
	return spent, nil
}

func nostrConnect(ctx context.Context, url string) (*nostr.Relay, error) {
	return nostr.RelayConnect(ctx, url)
}

// group runs functions concurrently, at most limit at a time (0: no limit), and returns the
// first error; the context it hands out is cancelled on the first error.
type group struct {
	wg     sync.WaitGroup
	sem    chan struct{}
	cancel context.CancelFunc
	once   sync.Once
	err    error
}

func newGroup(ctx context.Context, limit int) (*group, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	g := &group{cancel: cancel}
	if limit > 0 {
		g.sem = make(chan struct{}, limit)
	}
	return g, ctx
}

func (g *group) Go(fn func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if g.sem != nil {
			g.sem <- struct{}{}
			defer func() { <-g.sem }()
		}
		if err := fn(); err != nil {
			g.once.Do(func() { g.err = err; g.cancel() })
		}
	}()
}

func (g *group) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
