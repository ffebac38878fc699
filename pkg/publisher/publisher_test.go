package publisher

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/natsx"
	"github.com/openagents/runtime/pkg/relay"
)

// deadRelay returns a ws:// URL where nothing listens.
func deadRelay(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "ws://" + addr
}

func TestDeliverRecordAndRetry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	nc, js, err := natsx.ConnectAndProvision(ctx, natsx.ConnectOptions{URL: ns.URL()}, contracts.ProvisionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r, err := relay.Start(relay.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dead := deadRelay(t)

	p := New(Config{NC: nc, JS: js, DefaultRelays: []string{r.URL(), dead}, MaxAttempts: 2,
		WriteTimeout: 2 * time.Second, Metrics: prometheus.NewRegistry()})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()

	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	deliveries := make(chan contracts.Delivery, 10)
	sub, err := nc.Subscribe(contracts.DeliveredSubject(pk), func(m *nats.Msg) {
		var d contracts.Delivery
		if json.Unmarshal(m.Data, &d) == nil {
			deliveries <- d
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	ev := nostr.Event{Kind: 1, CreatedAt: nostr.Now(), Content: "hello", Tags: nostr.Tags{}}
	if err := ev.Sign(sk); err != nil {
		t.Fatal(err)
	}
	// Twice: the second enqueue is deduplicated by Nats-Msg-Id, so it is delivered once.
	for i := 0; i < 2; i++ {
		if err := Enqueue(ctx, js, pk, nil, ev); err != nil {
			t.Fatal(err)
		}
	}
	d := <-deliveries
	if !d.Durable || d.EventID != ev.ID || len(d.OK) != 1 || len(d.Failed) != 1 {
		t.Fatalf("delivery: %+v", d)
	}
	got := nostr.NewSimplePool(ctx).QuerySingle(ctx, []string{r.URL()}, nostr.Filter{IDs: []string{ev.ID}})
	if got == nil || got.Event.Content != "hello" {
		t.Fatal("relay does not hold the event")
	}

	// Only a dead relay: retried MaxAttempts times, then recorded as not durable.
	ev2 := nostr.Event{Kind: 1, CreatedAt: nostr.Now(), Content: "nowhere", Tags: nostr.Tags{}}
	_ = ev2.Sign(sk)
	if err := Enqueue(ctx, js, pk, []string{dead}, ev2); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-deliveries:
		if d.Durable || d.EventID != ev2.ID || d.Attempts != 2 || len(d.Reasons) == 0 {
			t.Fatalf("failed delivery: %+v", d)
		}
	case <-ctx.Done():
		t.Fatal("no failure record")
	}
	select {
	case d := <-deliveries:
		t.Fatalf("unexpected extra delivery record %+v", d)
	default:
	}

	// A forged event is terminated and recorded, never delivered. Tampering breaks the id, which
	// the publisher checks; it leaves signatures to the relays, which verify every event (a
	// bad signature alone becomes a failed delivery after the retries).
	forged := ev
	forged.Content = "tampered"
	b, _ := json.Marshal(contracts.PublishRequest{Event: forged})
	if _, err := js.Publish(ctx, contracts.PublishSubject(pk), b); err != nil {
		t.Fatal(err)
	}
	if d := <-deliveries; d.Durable || d.Reasons[0] != "invalid signature or id" {
		t.Fatalf("forged: %+v", d)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
