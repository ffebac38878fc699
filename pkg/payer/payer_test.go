package payer_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openagents/runtime/pkg/budget"
	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/payer"
)

func TestPaySucceedsAndIsRecorded(t *testing.T) {
	e := newEnv(t)
	agent := e.agent("alice", 20_000, budget.Defaults, lifecycle.Active)
	inv := e.invoice(500)

	res := e.pay(agent, contracts.PayRequest{IdempotencyKey: "k1", Bolt11: inv.Bolt11, TickID: "t1"})
	if res.Status != contracts.PayStatusSucceeded {
		t.Fatalf("pay: %+v", res)
	}
	pre, _ := hex.DecodeString(res.Preimage)
	if h := sha256.Sum256(pre); hex.EncodeToString(h[:]) != inv.PaymentHash {
		t.Fatalf("preimage %s does not hash to %s", res.Preimage, inv.PaymentHash)
	}
	rec := e.record(inv.PaymentHash)
	if rec.Status != payer.StatusSucceeded || rec.IdemKey != "k1" || rec.TickID != "t1" || rec.AmountSats != 500 || rec.Agent != agent {
		t.Fatalf("record: %+v", rec)
	}
	if got := e.balance("alice"); got != 19_500 {
		t.Fatalf("balance %d, want 19500", got)
	}
	if got := e.metric("sa_payer_sats_spent_total", map[string]string{"purpose": "compute"}); got != 500 {
		t.Fatalf("sats spent metric %v", got)
	}
	if got := e.metric("sa_payer_payments_total", map[string]string{"result": "succeeded"}); got != 1 {
		t.Fatalf("payments metric %v", got)
	}
	b := e.balanceReply(agent)
	if !b.Known || b.BalanceSats != 19_500 || b.SpentTodaySats != 500 || b.DailyBurnSats != 500 {
		t.Fatalf("balance reply: %+v", b)
	}
}

func TestSameIdempotencyKeyPaysOnce(t *testing.T) {
	e := newEnv(t)
	agent := e.agent("alice", 20_000, budget.Defaults, lifecycle.Active)
	inv := e.invoice(300)
	req := contracts.PayRequest{IdempotencyKey: "same", Bolt11: inv.Bolt11, TickID: "t1"}

	// Concurrent repeats and a late one: one payment, every answer the recorded one or in flight.
	var wg sync.WaitGroup
	results := make([]contracts.PayResult, 8)
	for i := range results {
		wg.Go(func() { results[i] = e.pay(agent, req) })
	}
	wg.Wait()
	for i, r := range results {
		if r.Status != contracts.PayStatusSucceeded && r.Status != contracts.PayStatusInFlight {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	late := e.pay(agent, req)
	if late.Status != contracts.PayStatusSucceeded || late.Preimage == "" || late.Code != "" {
		t.Fatalf("repeat: %+v", late)
	}
	if n := e.transfersOf(inv.PaymentHash); n != 1 {
		t.Fatalf("%d transfers for one invoice", n)
	}
	if got := e.balance("alice"); got != 19_700 {
		t.Fatalf("balance %d, want 19700", got)
	}
	if got := e.metric("sa_payer_payments_total", map[string]string{"result": "duplicate"}); got < 1 {
		t.Fatalf("duplicate metric %v", got)
	}
}

func TestSameHashOtherKeyIsDuplicate(t *testing.T) {
	e := newEnv(t)
	agent := e.agent("alice", 20_000, budget.Defaults, lifecycle.Active)
	inv := e.invoice(300)
	first := e.pay(agent, contracts.PayRequest{IdempotencyKey: "a", Bolt11: inv.Bolt11, TickID: "t1"})
	if first.Status != contracts.PayStatusSucceeded {
		t.Fatalf("first: %+v", first)
	}
	again := e.pay(agent, contracts.PayRequest{IdempotencyKey: "b", Bolt11: inv.Bolt11, TickID: "t2"})
	if again.Code != payer.CodeDuplicate || again.PaymentHash != inv.PaymentHash {
		t.Fatalf("second key: %+v", again)
	}
	if n := e.transfersOf(inv.PaymentHash); n != 1 {
		t.Fatalf("%d transfers", n)
	}
	if b := e.balanceReply(agent); b.SpentTodaySats != 300 {
		t.Fatalf("budget counted the duplicate: %+v", b)
	}
	// The key "a" is bound to this invoice: reusing it for another one is refused, unpaid.
	other := e.invoice(100)
	res := e.pay(agent, contracts.PayRequest{IdempotencyKey: "a", Bolt11: other.Bolt11, TickID: "t3"})
	if res.Status != contracts.PayStatusSucceeded || res.PaymentHash != inv.PaymentHash {
		t.Fatalf("reused key answered %+v, want the recorded result of the first invoice", res)
	}
	if n := e.transfersOf(other.PaymentHash); n != 0 {
		t.Fatalf("reused key paid another invoice")
	}
}

// TestBudgetsHoldUnderConcurrency fires 100 pay requests at once (distinct invoices, one tick)
// and checks that exactly as many succeed as the binding limit allows.
func TestBudgetsHoldUnderConcurrency(t *testing.T) {
	cases := []struct {
		name    string
		funds   int64
		limits  nipsa.BudgetLimits
		amount  int64
		want    int
		refusal string
	}{
		{"per_tick", 100_000, nipsa.BudgetLimits{DailyLimitSats: 1_000_000, PerTickLimitSats: 1_000, ReservedSats: 0}, 30, 33, "budget_per_tick"},
		{"daily", 100_000, nipsa.BudgetLimits{DailyLimitSats: 1_000, PerTickLimitSats: 1_000_000, ReservedSats: 0}, 30, 33, "budget_daily"},
		{"reserve", 10_000, nipsa.BudgetLimits{DailyLimitSats: 1_000_000, PerTickLimitSats: 1_000_000, ReservedSats: 7_000}, 100, 30, "budget_reserve"},
	}
	e := newEnv(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent := e.agent(tc.name, tc.funds, tc.limits, lifecycle.Active)
			invs := make([]string, 100)
			for i := range invs {
				invs[i] = e.invoice(tc.amount).Bolt11
			}
			results := make([]contracts.PayResult, len(invs))
			var wg sync.WaitGroup
			for i := range invs {
				wg.Go(func() {
					results[i] = e.pay(agent, contracts.PayRequest{IdempotencyKey: fmt.Sprint(tc.name, i), Bolt11: invs[i], TickID: "tick-1"})
				})
			}
			wg.Wait()
			var ok int
			for _, r := range results {
				switch {
				case r.Status == contracts.PayStatusSucceeded:
					ok++
				case r.Status == contracts.PayStatusRefused && r.Code == tc.refusal:
				default:
					t.Errorf("unexpected result %+v", r)
				}
			}
			if ok != tc.want {
				t.Fatalf("%d payments succeeded, want exactly %d", ok, tc.want)
			}
			if spent := tc.funds - e.balance(tc.name); spent != int64(ok)*tc.amount {
				t.Fatalf("wallet spent %d, succeeded sum %d", spent, int64(ok)*tc.amount)
			}
		})
	}
}

func TestUnknownOutcomeStaysInFlightAndIsReconciled(t *testing.T) {
	e := newEnv(t)
	agent := e.agent("alice", 20_000, budget.Defaults, lifecycle.Active)
	ctx := context.Background()

	// The wallet paid but the answer was lost; the lookup is failing too.
	e.faults.set(func(f *faults) { f.payUnknown, f.lookupUnknown = true, true })
	inv := e.invoice(400)
	req := contracts.PayRequest{IdempotencyKey: "k", Bolt11: inv.Bolt11, TickID: "t"}
	if res := e.pay(agent, req); res.Status != contracts.PayStatusInFlight {
		t.Fatalf("pay: %+v", res)
	}
	e.clock.Advance(2 * time.Hour) // past grace and expiry: still not failed, the wallet can not say
	if err := e.p.ReconcileAll(ctx); err == nil {
		t.Fatal("reconcile with an unreachable wallet reported no error")
	}
	if res := e.pay(agent, req); res.Status != contracts.PayStatusInFlight {
		t.Fatalf("repeat while unknown: %+v", res)
	}
	if rec := e.record(inv.PaymentHash); rec.Status != payer.StatusInFlight {
		t.Fatalf("record %+v", rec)
	}
	if g := e.metric("sa_payer_inflight_payments", nil); g != 1 {
		t.Fatalf("inflight gauge %v", g)
	}

	e.faults.set(func(f *faults) { f.lookupUnknown = false })
	if err := e.p.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	rec := e.record(inv.PaymentHash)
	if rec.Status != payer.StatusSucceeded || rec.Preimage == "" {
		t.Fatalf("reconciled record %+v", rec)
	}
	if res := e.pay(agent, req); res.Status != contracts.PayStatusSucceeded || res.Preimage != rec.Preimage {
		t.Fatalf("repeat after reconcile: %+v", res)
	}
	if n := e.transfersOf(inv.PaymentHash); n != 1 {
		t.Fatalf("%d transfers", n)
	}
	if g := e.metric("sa_payer_inflight_payments", nil); g != 0 {
		t.Fatalf("inflight gauge %v", g)
	}
	if got := e.metric("sa_payer_reconcile_total", map[string]string{"outcome": "succeeded"}); got != 1 {
		t.Fatalf("reconcile metric %v", got)
	}
}

func TestLostPaymentFailsOnlyAfterExpiry(t *testing.T) {
	e := newEnv(t)
	agent := e.agent("alice", 20_000, budget.Defaults, lifecycle.Active)
	ctx := context.Background()
	e.faults.set(func(f *faults) { f.payLost = true }) // the request never reached the wallet
	inv := e.invoice(400)
	req := contracts.PayRequest{IdempotencyKey: "k", Bolt11: inv.Bolt11, TickID: "t"}
	if res := e.pay(agent, req); res.Status != contracts.PayStatusInFlight {
		t.Fatalf("pay: %+v", res)
	}
	e.faults.set(func(f *faults) { f.payLost = false })
	e.clock.Advance(10 * time.Minute) // past grace, invoice still valid: it could still be paid
	if err := e.p.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	if rec := e.record(inv.PaymentHash); rec.Status != payer.StatusInFlight {
		t.Fatalf("closed before expiry: %+v", rec)
	}
	if b := e.balanceReply(agent); b.SpentTodaySats != 400 {
		t.Fatalf("reservation not held while in flight: %+v", b)
	}
	e.clock.Advance(time.Hour)
	if err := e.p.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	if rec := e.record(inv.PaymentHash); rec.Status != payer.StatusFailed || rec.Code != payer.CodeNotFound {
		t.Fatalf("after expiry: %+v", rec)
	}
	if b := e.balanceReply(agent); b.SpentTodaySats != 0 {
		t.Fatalf("reservation not refunded: %+v", b)
	}
	if n := e.transfersOf(inv.PaymentHash); n != 0 {
		t.Fatalf("%d transfers", n)
	}
}

func TestRefusedInvoicesPayNothing(t *testing.T) {
	e := newEnv(t)
	agent := e.agent("alice", 20_000, budget.Defaults, lifecycle.Active)
	testnet := devln.New(devln.Options{Network: "testnet"})
	wrong, err := testnet.Account("provider").MakeInvoice(context.Background(), 100_000, "x", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	short, err := e.ln.Account("provider").MakeInvoice(context.Background(), 100_000, "x", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	over := e.invoice(900)
	cases := []struct {
		name, bolt11, hash, code string
		max                      int64
		advance                  time.Duration
	}{
		{"wrong network", wrong.Bolt11, wrong.PaymentHash, "wrong_network", 1000, 0},
		{"over max", over.Bolt11, over.PaymentHash, "over_bid", 800, 0},
		{"garbage", "lnbcrt1notaninvoice", "", "decode", 1000, 0},
		{"expired", short.Bolt11, short.PaymentHash, "expired", 1000, 2 * time.Minute},
	}
	for _, tc := range cases {
		e.clock.Advance(tc.advance)
		res := e.pay(agent, contracts.PayRequest{IdempotencyKey: tc.name, Bolt11: tc.bolt11, MaxSats: tc.max, TickID: "t"})
		if res.Status != contracts.PayStatusRefused || res.Code != tc.code {
			t.Errorf("%s: %+v, want refused %s", tc.name, res, tc.code)
		}
		if tc.hash != "" {
			if _, err := e.kv.Get(context.Background(), "pay."+tc.hash); err == nil {
				t.Errorf("%s: refused invoice has a ledger record", tc.name)
			}
		}
	}
	if got := e.balance("alice"); got != 20_000 {
		t.Fatalf("balance %d after refusals", got)
	}
	if got := e.metric("sa_payer_payments_total", map[string]string{"result": "refused"}); got != 4 {
		t.Fatalf("refused metric %v", got)
	}
}

func TestBalanceUnknownChangesNothing(t *testing.T) {
	e := newEnv(t)
	agent := e.agent("alice", 0, budget.Defaults, lifecycle.Hibernating)
	e.faults.set(func(f *faults) { f.balanceErr = true })
	b := e.balanceReply(agent)
	if b.Known || b.Error == "" || b.Lifecycle != string(lifecycle.Hibernating) {
		t.Fatalf("unknown balance reply: %+v", b)
	}
	if lc := e.lifecycleOf(agent); lc != string(lifecycle.Hibernating) {
		t.Fatalf("lifecycle moved to %s on an unknown balance", lc)
	}
	res := e.pay(agent, contracts.PayRequest{IdempotencyKey: "k", Bolt11: e.invoice(10).Bolt11, TickID: "t"})
	if res.Status != contracts.PayStatusRefused || res.Code != payer.CodeBalanceUnknown {
		t.Fatalf("pay with unknown balance: %+v", res)
	}
	// The same read, confirmed, does move it: zero from Hibernating is death.
	e.faults.set(func(f *faults) { f.balanceErr = false })
	if b := e.balanceReply(agent); !b.Known || b.Lifecycle != string(lifecycle.Dead) {
		t.Fatalf("confirmed zero: %+v", b)
	}
}

func TestLifecycleFollowsMoney(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	agent := e.agent("spender", 20_000, bigLimits, lifecycle.Active)
	changes, err := e.nc.SubscribeSync(contracts.LifecycleSubject(agent))
	if err != nil {
		t.Fatal(err)
	}
	funded, err := e.nc.SubscribeSync(contracts.FundedSubject(agent))
	if err != nil {
		t.Fatal(err)
	}
	expectChange := func(from, to lifecycle.State) {
		t.Helper()
		m, err := changes.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no lifecycle change %s -> %s: %v", from, to, err)
		}
		var c contracts.LifecycleChange
		_ = json.Unmarshal(m.Data, &c)
		if c.From != string(from) || c.To != string(to) || c.Agent != agent {
			t.Fatalf("change %+v, want %s -> %s", c, from, to)
		}
		if lc := e.lifecycleOf(agent); lc != string(to) {
			t.Fatalf("registry says %s, want %s", lc, to)
		}
	}
	pay := func(sats int64, key string) {
		t.Helper()
		if r := e.pay(agent, contracts.PayRequest{IdempotencyKey: key, Bolt11: e.invoice(sats).Bolt11, TickID: key}); r.Status != contracts.PayStatusSucceeded {
			t.Fatalf("pay %d: %+v", sats, r)
		}
	}
	// 4000 spent today: burn 4000/day, 16000 left is 4 days of runway.
	pay(4_000, "p1")
	expectChange(lifecycle.Active, lifecycle.LowBalance)
	if b := e.balanceReply(agent); b.DailyBurnSats != 4_000 || b.BalanceSats != 16_000 {
		t.Fatalf("balance reply %+v", b)
	}
	pay(15_500, "p2")
	expectChange(lifecycle.LowBalance, lifecycle.Hibernating)
	pay(500, "p3")
	expectChange(lifecycle.Hibernating, lifecycle.Dead)
	if r := e.pay(agent, contracts.PayRequest{IdempotencyKey: "p4", Bolt11: e.invoice(1).Bolt11, TickID: "p4"}); r.Code != payer.CodeDead {
		t.Fatalf("dead agent paid: %+v", r)
	}

	// Funds for the dead: reported, but it stays dead.
	var ir contracts.InvoiceReply
	e.request(contracts.InvoiceSubject(agent), contracts.InvoiceRequest{AmountSats: 5_000}, &ir)
	if ir.Error != "" {
		t.Fatal(ir.Error)
	}
	if _, err := e.ln.Account(devln.FaucetAccount).PayInvoice(ctx, ir.Bolt11); err != nil {
		t.Fatal(err)
	}
	m, err := funded.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no Funded notice: %v", err)
	}
	var f contracts.Funded
	_ = json.Unmarshal(m.Data, &f)
	if f.AmountSats != 5_000 || f.PaymentHash != ir.PaymentHash || f.Agent != agent {
		t.Fatalf("funded %+v", f)
	}
	if lc := e.lifecycleOf(agent); lc != string(lifecycle.Dead) {
		t.Fatalf("dead agent became %s", lc)
	}

	// A hibernating agent funded comes back up.
	sleeper := e.agent("sleeper", 500, bigLimits, lifecycle.Hibernating)
	sc, err := e.nc.SubscribeSync(contracts.LifecycleSubject(sleeper))
	if err != nil {
		t.Fatal(err)
	}
	e.request(contracts.InvoiceSubject(sleeper), contracts.InvoiceRequest{AmountSats: 50_000}, &ir)
	if ir.Error != "" {
		t.Fatal(ir.Error)
	}
	if _, err := e.ln.Account(devln.FaucetAccount).PayInvoice(ctx, ir.Bolt11); err != nil {
		t.Fatal(err)
	}
	m, err = sc.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no lifecycle change on funding: %v", err)
	}
	var c contracts.LifecycleChange
	_ = json.Unmarshal(m.Data, &c)
	if c.From != string(lifecycle.Hibernating) || c.To != string(lifecycle.Active) || c.BalanceSats != 50_500 {
		t.Fatalf("change %+v", c)
	}
	if got := e.metric("sa_payer_sats_received_total", nil); got != 55_000 {
		t.Fatalf("received metric %v", got)
	}
}

// TestSubAccountsKeepBalancesApart runs two agents on one shared node (as with LND): each
// one's balance is what its own funding brought in minus what it paid, whatever the node holds.
func TestSubAccountsKeepBalancesApart(t *testing.T) {
	e := newEnv(t, func(e *env, c *payer.Config) { c.Wallets = payer.SubAccounts{Node: e.ln.Account("node")} })
	ctx := context.Background()
	if err := e.ln.Faucet(ctx, "node", 1_000_000*1000); err != nil { // the operator's own money
		t.Fatal(err)
	}
	a := e.agent("a", 0, bigLimits, lifecycle.Spawning)
	b := e.agent("b", 0, bigLimits, lifecycle.Spawning)
	fund := func(agent string, sats int64) {
		t.Helper()
		fr, err := e.nc.SubscribeSync(contracts.FundedSubject(agent))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = fr.Unsubscribe() }()
		var ir contracts.InvoiceReply
		e.request(contracts.InvoiceSubject(agent), contracts.InvoiceRequest{AmountSats: sats}, &ir)
		if ir.Error != "" {
			t.Fatal(ir.Error)
		}
		if _, err := e.ln.Account(devln.FaucetAccount).PayInvoice(ctx, ir.Bolt11); err != nil {
			t.Fatal(err)
		}
		if _, err := fr.NextMsg(5 * time.Second); err != nil {
			t.Fatalf("no Funded notice: %v", err)
		}
	}
	if r := e.balanceReply(a); !r.Known || r.BalanceSats != 0 || r.Lifecycle != string(lifecycle.Spawning) {
		t.Fatalf("before funding: %+v", r)
	}
	fund(a, 3_000)
	fund(b, 20_000)
	if r := e.pay(a, contracts.PayRequest{IdempotencyKey: "a1", Bolt11: e.invoice(2_000).Bolt11, TickID: "t"}); r.Status != contracts.PayStatusSucceeded {
		t.Fatalf("a pays 2000: %+v", r)
	}
	// a has 1000 left although the node holds over a million: the ledger, not the node, decides.
	if r := e.pay(a, contracts.PayRequest{IdempotencyKey: "a2", Bolt11: e.invoice(1_500).Bolt11, TickID: "t"}); r.Code != "budget_balance" {
		t.Fatalf("a overspends: %+v", r)
	}
	ra, rb := e.balanceReply(a), e.balanceReply(b)
	if ra.BalanceSats != 1_000 || rb.BalanceSats != 20_000 || rb.Lifecycle != string(lifecycle.Active) {
		t.Fatalf("balances a %+v b %+v", ra, rb)
	}
}
