package scheduler

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/natsx"
	"github.com/openagents/runtime/pkg/registry"
	"github.com/openagents/runtime/pkg/trigger"
)

// env is a real embedded NATS with every stream and bucket provisioned, and the registry.
type env struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	reg *registry.Registry
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	ctx := context.Background()
	nc, js, err := natsx.ConnectAndProvision(ctx, natsx.ConnectOptions{URL: ns.URL(), Name: t.Name()}, contracts.ProvisionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return &env{nc: nc, js: js, reg: reg}
}

// replica is one running Scheduler.
type replica struct {
	*Scheduler
	stop func()
}

func (e *env) start(t *testing.T, mod func(*Config)) *replica {
	t.Helper()
	cfg := Config{NC: e.nc, JS: e.js, Registry: e.reg, Metrics: prometheus.NewRegistry(), FlushInterval: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("scheduler stopped before ready: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("scheduler not ready after 10s")
	}
	var once sync.Once
	r := &replica{Scheduler: s}
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(r.stop)
	return r
}

type testAgent struct {
	sk, pub string
	key     [32]byte
}

func newAgent(t *testing.T) testAgent {
	sk := nostr.GeneratePrivateKey()
	pub, err := nostr.GetPublicKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	a := testAgent{sk: sk, pub: pub}
	raw, _ := hex.DecodeString(pub)
	copy(a.key[:], raw)
	return a
}

func (e *env) register(t *testing.T, ag testAgent, name string, mod func(*registry.Agent)) {
	t.Helper()
	a := registry.Agent{Pubkey: ag.pub, Name: name, Lifecycle: "active", Active: true, HeartbeatSeconds: 1}
	if mod != nil {
		mod(&a)
	}
	if err := e.reg.Create(context.Background(), a); err != nil {
		t.Fatal(err)
	}
}

func (e *env) update(t *testing.T, ag testAgent, fn func(*registry.Agent)) {
	t.Helper()
	if _, err := e.reg.Update(context.Background(), ag.pub, func(a *registry.Agent) error { fn(a); return nil }); err != nil {
		t.Fatal(err)
	}
}

// triggers reads every message stored in SA_TRIGGERS for agent. The stream is a work queue
// with no consumer in these tests, so it holds exactly what JetStream accepted.
func (e *env) triggers(t *testing.T, agent string) []contracts.Trigger {
	t.Helper()
	ctx := context.Background()
	st, err := e.js.Stream(ctx, contracts.StreamTriggers)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []contracts.Trigger
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if m.Subject != contracts.TriggerSubject(agent) {
			continue
		}
		// What the ticker will run: every stored trigger must pass its parser.
		if _, _, err := trigger.Parse(m.Subject, m.Data, time.Now()); err != nil {
			t.Errorf("trigger.Parse refuses a stored trigger: %v\n%s", err, m.Data)
		}
		var tr contracts.Trigger
		if err := json.Unmarshal(m.Data, &tr); err != nil {
			t.Fatalf("stored trigger does not parse: %v", err)
		}
		out = append(out, tr)
	}
	return out
}

// slots returns the heartbeat slots stored for agent, with how many times each is stored.
func (e *env) slots(t *testing.T, agent string) map[int64]int {
	out := map[int64]int{}
	for _, tr := range e.triggers(t, agent) {
		if tr.Type != contracts.TriggerHeartbeat {
			continue
		}
		s, ok := strings.CutPrefix(tr.ID, strings.TrimSuffix(heartbeatID(agent, 0), "0"))
		if !ok {
			t.Fatalf("heartbeat id %q does not name agent and slot", tr.ID)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("heartbeat id %q: %v", tr.ID, err)
		}
		out[n]++
	}
	return out
}

// await polls cond until it holds or the deadline passes.
func await(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	go func() { c.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		var d dto.Metric
		_ = m.Write(&d)
		switch {
		case d.Counter != nil:
			sum += d.Counter.GetValue()
		case d.Gauge != nil:
			sum += d.Gauge.GetValue()
		}
	}
	return sum
}

func (r *replica) triggersTotal(typ, source string) float64 {
	return value(r.m.triggers.WithLabelValues(typ, source))
}

func (r *replica) droppedTotal(reason string) float64 {
	return value(r.m.dropped.WithLabelValues(reason))
}
