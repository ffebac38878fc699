package natsx

import (
	"context"
	"testing"
	"time"

	"github.com/openagents/runtime/pkg/contracts"
)

func TestEmbeddedProvisionIdempotent(t *testing.T) {
	e, err := StartEmbedded(EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		nc, js, err := ConnectAndProvision(ctx, ConnectOptions{URL: e.URL(), Name: "test"}, contracts.ProvisionOptions{})
		if err != nil {
			t.Fatalf("provision #%d: %v", i+1, err)
		}
		for _, s := range contracts.Streams(contracts.ProvisionOptions{}) {
			if _, err := js.Stream(ctx, s.Name); err != nil {
				t.Fatalf("stream %s missing: %v", s.Name, err)
			}
		}
		for _, b := range contracts.Buckets(contracts.ProvisionOptions{}) {
			if _, err := js.KeyValue(ctx, b.Bucket); err != nil {
				t.Fatalf("bucket %s missing: %v", b.Bucket, err)
			}
		}
		// Nats-Msg-Id dedupe is what keeps two scheduler replicas from causing two ticks.
		agent := "aa"
		for j := 0; j < 2; j++ {
			ack, err := js.Publish(ctx, contracts.TriggerSubject(agent), []byte(`{"type":"manual"}`), jetstreamMsgID("same"))
			if err != nil {
				t.Fatal(err)
			}
			if j == 1 && !ack.Duplicate {
				t.Fatal("second publish with the same Nats-Msg-Id was not a duplicate")
			}
		}
		nc.Close()
	}
}
