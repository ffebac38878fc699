package provider_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/model"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/provider"
	"github.com/openagents/runtime/pkg/relay"
)

const price = 4_000

// env is a real relay, a devln ledger, a running provider and a raw Nostr client (no
// pkg/compute), so the provider is tested on the wire as any peer would see it.
type env struct {
	t      *testing.T
	url    string
	ledger *devln.Ledger
	prov   *provider.Provider
	pool   *nostr.SimplePool
	sk, pk string // the customer
	ctx    context.Context
}

func newEnv(t *testing.T, tweak func(*provider.Config)) *env {
	t.Helper()
	r, err := relay.Start(relay.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	l := devln.New(devln.Options{})
	if err := l.Faucet(ctx, "customer", 100_000); err != nil {
		t.Fatal(err)
	}
	cfg := provider.Config{
		SecretKey: nostr.GeneratePrivateKey(), Relays: []string{r.URL()}, Wallet: l.Account("provider"),
		PriceMsat: price, Model: model.Builtin{}, ModelName: "builtin", Name: "ref", Log: testLog(),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := provider.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	t.Cleanup(func() {
		pcancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-p.Ready():
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	case <-ctx.Done():
		t.Fatal("provider not ready")
	}
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	return &env{t: t, url: r.URL(), ledger: l, prov: p, pool: nostr.NewSimplePool(ctx), sk: sk, pk: pk, ctx: ctx}
}

func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// subscribe opens a subscription and returns once the relay has sent EOSE.
func (e *env) subscribe(f nostr.Filter) chan nostr.RelayEvent {
	e.t.Helper()
	eose := make(chan struct{})
	ch := e.pool.SubscribeManyNotifyEOSE(e.ctx, []string{e.url}, f, eose)
	select {
	case <-eose:
	case <-e.ctx.Done():
		e.t.Fatal("no EOSE")
	}
	return ch
}

func (e *env) publish(ev *nostr.Event) {
	e.t.Helper()
	ev.CreatedAt = nostr.Now()
	if err := ev.Sign(e.sk); err != nil {
		e.t.Fatal(err)
	}
	for r := range e.pool.PublishMany(e.ctx, []string{e.url}, *ev) {
		if r.Error != nil {
			e.t.Fatal(r.Error)
		}
	}
}

func (e *env) next(ch chan nostr.RelayEvent) *nostr.Event {
	e.t.Helper()
	select {
	case ie := <-ch:
		return ie.Event
	case <-e.ctx.Done():
		e.t.Fatal("timed out waiting for an event")
		return nil
	}
}

func (e *env) pay(bolt11 string) {
	e.t.Helper()
	p, err := e.ledger.Account("customer").PayInvoice(e.ctx, bolt11)
	if err != nil || p.Status != lightning.PaymentSucceeded {
		e.t.Fatalf("pay: %+v %v", p, err)
	}
}

func tag(ev *nostr.Event, name string) nostr.Tag {
	return ev.Tags.Find(name)
}

func TestAnnouncement(t *testing.T) {
	e := newEnv(t, nil)
	var handlers []*nostr.Event
	for ie := range e.pool.FetchMany(e.ctx, []string{e.url}, nostr.Filter{Kinds: []int{nipsa.KindHandlerInfo}, Authors: []string{e.prov.Pubkey()}}) {
		handlers = append(handlers, ie.Event)
	}
	if len(handlers) != 1 {
		t.Fatalf("%d handlers", len(handlers))
	}
	h := handlers[0]
	want := nostr.Tags{
		{"d", provider.HandlerD}, {"k", "5050"}, {"handler", "compute_provider"}, {"capability", "text-generation"},
		{"price", strconv.Itoa(price), "per-request", "msats"}, {"network", "regtest"}, {"model", "builtin"},
		{"channel", e.prov.Channel()}, {"relay", e.url},
	}
	if !slices.EqualFunc(h.Tags, want, func(a, b nostr.Tag) bool { return slices.Equal(a, b) }) {
		t.Fatalf("tags %v\nwant %v", h.Tags, want)
	}
	var c struct{ Name, Description string }
	if err := json.Unmarshal([]byte(h.Content), &c); err != nil || c.Name != "ref" || c.Description == "" {
		t.Fatalf("content %q: %v", h.Content, err)
	}
	// The channel exists as a kind 40 by the provider, and it announced itself in it.
	var kinds []int
	for ie := range e.pool.FetchMany(e.ctx, []string{e.url}, nostr.Filter{IDs: []string{e.prov.Channel()}}) {
		kinds = append(kinds, ie.Event.Kind)
		if ie.Event.PubKey != e.prov.Pubkey() {
			t.Error("channel by someone else")
		}
	}
	if !slices.Equal(kinds, []int{nipsa.KindChannelCreate}) {
		t.Fatalf("channel event kinds %v", kinds)
	}
	var ann []string
	for ie := range e.pool.FetchMany(e.ctx, []string{e.url}, nostr.Filter{Kinds: []int{nipsa.KindChannelMessage}, Tags: nostr.TagMap{"e": {e.prov.Channel()}}}) {
		ann = append(ann, ie.Event.Content)
		if root := tag(ie.Event, "e"); len(root) != 4 || root[3] != "root" {
			t.Errorf("kind 42 e tag %v", root)
		}
	}
	if len(ann) != 1 || !strings.Contains(ann[0], `"type":"ServiceAnnouncement"`) || !strings.Contains(ann[0], `"price_msats":4000`) {
		t.Fatalf("announcements %v", ann)
	}
}

func jobRequest(prompt string, tags ...nostr.Tag) *nostr.Event {
	return &nostr.Event{Kind: nipsa.KindTextGeneration, Tags: append(nostr.Tags{{"i", prompt, "text"}}, tags...)}
}

func TestNIP90PaidDelivers(t *testing.T) {
	for _, polled := range []bool{false, true} {
		t.Run(map[bool]string{false: "WaitSettled", true: "polling"}[polled], func(t *testing.T) {
			e := newEnv(t, func(c *provider.Config) {
				if polled { // a wallet without WaitSettled
					c.Wallet = struct{ lightning.Wallet }{c.Wallet}
					c.PollInterval = 50 * time.Millisecond
				}
			})
			req := jobRequest("hello provider", nostr.Tag{"param", "max_tokens", "32"}, nostr.Tag{"bid", "5000"})
			req.CreatedAt = nostr.Now()
			req.Sign(e.sk)
			ch := e.subscribe(nostr.Filter{Kinds: []int{nipsa.KindJobFeedback, nipsa.KindTextGenResult}, Tags: nostr.TagMap{"e": {req.ID}}})
			for r := range e.pool.PublishMany(e.ctx, []string{e.url}, *req) {
				if r.Error != nil {
					t.Fatal(r.Error)
				}
			}
			fb := e.next(ch)
			amt := tag(fb, "amount")
			if fb.Kind != nipsa.KindJobFeedback || tag(fb, "status")[1] != provider.StatusPaymentRequired ||
				len(amt) != 3 || amt[1] != strconv.Itoa(price) || tag(fb, "p")[1] != e.pk || fb.PubKey != e.prov.Pubkey() {
				t.Fatalf("feedback %v", fb)
			}
			e.pay(amt[2])
			var res *nostr.Event
			for res == nil {
				if ev := e.next(ch); ev.Kind == nipsa.KindTextGenResult {
					res = ev
				} else if s := tag(ev, "status")[1]; s != provider.StatusProcessing {
					t.Fatalf("unexpected feedback %s", s)
				}
			}
			want, _ := model.Builtin{}.Complete(e.ctx, model.Request{Prompt: "hello provider"})
			if res.Content != want.Text || tag(res, "e")[1] != req.ID || tag(res, "p")[1] != e.pk {
				t.Fatalf("result %v", res)
			}
			var echoed nostr.Event
			if err := json.Unmarshal([]byte(tag(res, "request")[1]), &echoed); err != nil || echoed.ID != req.ID {
				t.Fatalf("request tag: %v", err)
			}
			if b, _ := e.ledger.Account("provider").Balance(e.ctx); b != price {
				t.Fatalf("provider balance %d", b)
			}
		})
	}
}

func TestNIP90Refusals(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		req  *nostr.Event
		want string
	}{
		{jobRequest("x", nostr.Tag{"bid", "3999"}), "bid below price"},
		{jobRequest("x", nostr.Tag{"bid", "lots"}), "bid must be"},
		{&nostr.Event{Kind: nipsa.KindTextGeneration, Tags: nostr.Tags{{"i", "https://x", "url"}}}, "only text input"},
		{&nostr.Event{Kind: nipsa.KindTextGeneration, Tags: nostr.Tags{{"relays", e.url}}}, "no text input"},
		{jobRequest("x", nostr.Tag{"encrypted"}), "encrypted"},
	}
	// Addressed to another provider: never answered nor counted (checked in the stats below,
	// after the round trips of the cases).
	e.publish(jobRequest("x", nostr.Tag{"p", strings.Repeat("0", 64)}))
	for _, c := range cases {
		c.req.CreatedAt = nostr.Now()
		c.req.Sign(e.sk)
		ch := e.subscribe(nostr.Filter{Kinds: []int{nipsa.KindJobFeedback}, Tags: nostr.TagMap{"e": {c.req.ID}}})
		for r := range e.pool.PublishMany(e.ctx, []string{e.url}, *c.req) {
			if r.Error != nil {
				t.Fatal(r.Error)
			}
		}
		fb := e.next(ch)
		st := tag(fb, "status")
		if st[1] != provider.StatusError || !strings.Contains(st[2], c.want) || tag(fb, "amount") != nil {
			t.Errorf("want error %q, got %v", c.want, fb.Tags)
		}
	}
	if st := e.prov.Stats(); st.Invoices != 0 || st.Refused != 5 || st.Requests != 5 {
		t.Fatalf("stats %+v", st)
	}
}

// The core guarantee: no settlement, no result, on both protocols.
func TestUnpaidGetsNoResult(t *testing.T) {
	e := newEnv(t, func(c *provider.Config) { c.InvoiceExpiry = time.Second })

	// NIP-90: take the invoice, do not pay.
	req := jobRequest("free lunch?", nostr.Tag{"p", e.prov.Pubkey()})
	req.CreatedAt = nostr.Now()
	req.Sign(e.sk)
	ch := e.subscribe(nostr.Filter{Kinds: []int{nipsa.KindJobFeedback, nipsa.KindTextGenResult}, Tags: nostr.TagMap{"e": {req.ID}}})
	for r := range e.pool.PublishMany(e.ctx, []string{e.url}, *req) {
		if r.Error != nil {
			t.Fatal(r.Error)
		}
	}
	if fb := e.next(ch); tag(fb, "status")[1] != provider.StatusPaymentRequired {
		t.Fatalf("first %v", fb.Tags)
	}
	// The next event must be the expiry notice, not a result.
	if fb := e.next(ch); fb.Kind != nipsa.KindJobFeedback || tag(fb, "status")[1] != provider.StatusError {
		t.Fatalf("after expiry got kind %d %v", fb.Kind, fb.Tags)
	}

	// NIP-28: take the invoice, claim PaymentSent, do not pay.
	chMsgs := e.subscribe(nostr.Filter{Kinds: []int{nipsa.KindChannelMessage}, Authors: []string{e.prov.Pubkey()},
		Tags: nostr.TagMap{"e": {e.prov.Channel()}}, Since: ptr(nostr.Now())})
	jr := e.channelMsg(map[string]any{"type": "JobRequest", "kind": 5050, "prompt": "free lunch?", "max_tokens": 10})
	jobID := "job_" + jr.ID[:16]
	inv := e.nextOfJob(chMsgs, jobID)
	if inv["type"] != "Invoice" || inv["amount_msats"] != float64(price) || !strings.HasPrefix(inv["bolt11"].(string), "lnbcrt") {
		t.Fatalf("invoice %v", inv)
	}
	e.channelMsg(map[string]any{"type": "PaymentSent", "job_id": jobID, "payment_id": inv["payment_hash"]})
	if m := e.nextOfJob(chMsgs, jobID); m["type"] != "Error" || !strings.Contains(m["message"].(string), "payment not received") {
		t.Fatalf("after a false PaymentSent got %v", m)
	}
	if st := e.prov.Stats(); st.Delivered != 0 || st.Paid != 0 || st.Unpaid != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNIP28PaidDelivers(t *testing.T) {
	e := newEnv(t, nil)
	chMsgs := e.subscribe(nostr.Filter{Kinds: []int{nipsa.KindChannelMessage}, Authors: []string{e.prov.Pubkey()},
		Tags: nostr.TagMap{"e": {e.prov.Channel()}}, Since: ptr(nostr.Now())})
	// A request for another provider is not answered; ours is.
	e.channelMsg(map[string]any{"type": "JobRequest", "kind": 5050, "prompt": "p", "target_provider": strings.Repeat("0", 64)})
	jr := e.channelMsg(map[string]any{"type": "JobRequest", "kind": 5050, "prompt": "hello channel", "target_provider": e.prov.Pubkey()})
	jobID := provider.JobID(jr.ID)
	if jobID != "job_"+jr.ID[:16] {
		t.Fatalf("job id %s", jobID)
	}
	inv := e.nextOfJob(chMsgs, jobID)
	if inv["type"] != "Invoice" {
		t.Fatalf("%v", inv)
	}
	e.pay(inv["bolt11"].(string))
	e.channelMsg(map[string]any{"type": "PaymentSent", "job_id": jobID, "payment_id": inv["payment_hash"]})
	res := e.nextOfJob(chMsgs, jobID)
	want, _ := model.Builtin{}.Complete(e.ctx, model.Request{Prompt: "hello channel"})
	if res["type"] != "JobResult" || res["result"] != want.Text {
		t.Fatalf("result %v", res)
	}
	if st := e.prov.Stats(); st.Requests != 1 || st.Delivered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func (e *env) channelMsg(content map[string]any) *nostr.Event {
	e.t.Helper()
	b, _ := json.Marshal(content)
	ev := &nostr.Event{Kind: nipsa.KindChannelMessage, Content: string(b),
		Tags: nostr.Tags{{"e", e.prov.Channel(), e.url, "root"}}}
	e.publish(ev)
	return ev
}

// nextOfJob returns the next channel message about jobID, skipping others.
func (e *env) nextOfJob(ch chan nostr.RelayEvent, jobID string) map[string]any {
	e.t.Helper()
	for {
		ev := e.next(ch)
		var m map[string]any
		if json.Unmarshal([]byte(ev.Content), &m) != nil || m["job_id"] != jobID {
			if m["job_id"] != nil {
				e.t.Errorf("message about another job: %s", ev.Content)
			}
			continue
		}
		return m
	}
}

func ptr[T any](v T) *T { return &v }

func TestConfigErrors(t *testing.T) {
	l := devln.New(devln.Options{})
	good := provider.Config{SecretKey: nostr.GeneratePrivateKey(), Relays: []string{"ws://127.0.0.1:1"},
		Wallet: l.Account("p"), PriceMsat: 1, Model: model.Builtin{}}
	if _, err := provider.New(good); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(*provider.Config){
		"key":        func(c *provider.Config) { c.SecretKey = "nsec1notahexkey" },
		"relays":     func(c *provider.Config) { c.Relays = nil },
		"wallet":     func(c *provider.Config) { c.Wallet = nil },
		"model":      func(c *provider.Config) { c.Model = nil },
		"price":      func(c *provider.Config) { c.PriceMsat = 0 },
		"network":    func(c *provider.Config) { c.Network = "mainnet" },
		"overcharge": func(c *provider.Config) { c.OverchargeMsat = -1 },
	} {
		c := good
		f(&c)
		_, err := provider.New(c)
		if !errors.Is(err, provider.ErrConfig) {
			t.Errorf("%s: %v", name, err)
		} else if strings.Contains(err.Error(), good.SecretKey) {
			t.Errorf("%s: error leaks the key", name)
		}
	}
}
