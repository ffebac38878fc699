// Package payer_test runs the payer service as a separate process and kills it with SIGKILL at
// random points while it pays, to check the ledger's exactly-once guarantee end to end.
package payer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/natsx"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/payer"
	"github.com/openagents/runtime/pkg/registry"
)

const (
	payments    = 200
	workers     = 8
	fundSats    = 1_000_000
	invoiceLife = 4 * time.Second // short, so payments lost in a crash resolve within the test
)

// buildPayer compiles services/payer into dir.
func buildPayer(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "payer")
	cmd := exec.Command("go", "build", "-o", bin, "./services/payer")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build services/payer: %v\n%s", err, out)
	}
	return bin
}

// proc runs payer processes one after another, each killed or stopped before the next.
type proc struct {
	t    *testing.T
	bin  string
	args []string
	logs *os.File

	mu  sync.Mutex
	cmd *exec.Cmd
}

func (p *proc) start() {
	p.t.Helper()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	cmd.Env = append(os.Environ(), "OPENAGENTS_LOG_LEVEL=warn")
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start payer: %v", err)
	}
	p.mu.Lock()
	p.cmd = cmd
	p.mu.Unlock()
}

func (p *proc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// stop sends SIGTERM and returns the exit error (nil for a clean exit).
func (p *proc) stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		return errors.New("payer did not stop within 20s of SIGTERM")
	}
}

type outcome struct {
	hash   string
	amount int64
	res    contracts.PayResult
}

func TestPayerSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a payer process")
	}
	dir := t.TempDir()
	bin := buildPayer(t, dir)
	ctx := context.Background()

	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{Dir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	nc, js, err := natsx.ConnectAndProvision(ctx, natsx.ConnectOptions{URL: ns.URL(), Name: "kill-test"}, contracts.ProvisionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	ln := devln.New(devln.Options{})
	srv := httptest.NewServer(ln.Handler())
	defer srv.Close()

	agent := "ab" + hex.EncodeToString(bytes.Repeat([]byte{0xcd}, 31))
	if err := reg.Create(ctx, registry.Agent{Pubkey: agent, Name: "survivor", Lifecycle: string(lifecycle.Active), Active: true,
		Wallet: registry.WalletBinding{Kind: registry.WalletDevnet, Account: "survivor"},
		Limits: nipsa.BudgetLimits{DailyLimitSats: 10_000_000, PerTickLimitSats: 10_000_000}}); err != nil {
		t.Fatal(err)
	}
	if err := ln.Faucet(ctx, "survivor", fundSats*1000); err != nil {
		t.Fatal(err)
	}
	supply := ln.Total()

	logs, err := os.Create(filepath.Join(dir, "payer.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	httpAddr := freeAddr(t)
	healthURL := "http://" + httpAddr + "/readyz"
	p := &proc{t: t, bin: bin, logs: logs, args: []string{
		"--nats", ns.URL(), "--http", httpAddr, "--wallet", "devnet", "--devnet-wallet", srv.URL,
		"--network", "regtest", "--pay-timeout", "3s", "--reconcile-every", "200ms", "--grace", "500ms",
	}}
	p.start()
	waitReady(t, healthURL)
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("payer log tail:\n%s", b)
		}
	}()

	// Kill -9 at random points until every payment has a final answer.
	var kills atomic.Int64
	stopKilling := make(chan struct{})
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		for {
			select {
			case <-stopKilling:
				return
			case <-time.After(time.Duration(rand.IntN(300)) * time.Millisecond):
			}
			p.kill()
			kills.Add(1)
			p.start()
			// Kill only a payer that got as far as serving, so every life makes some progress
			// whatever the machine's load; the random delay above picks the point.
			waitReady(t, healthURL)
		}
	}()

	provider := ln.Account("provider")
	outcomes := make([]outcome, payments)
	jobs := make(chan int)
	var wg sync.WaitGroup
	deadline := time.Now().Add(45 * time.Second)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				amount := int64(1 + rand.IntN(100))
				inv, err := provider.MakeInvoice(ctx, amount*1000, fmt.Sprint("job ", i), invoiceLife)
				if err != nil {
					t.Error(err)
					return
				}
				req := contracts.PayRequest{IdempotencyKey: fmt.Sprint("pay-", i), Bolt11: inv.Bolt11, MaxSats: 1000,
					TickID: fmt.Sprint("tick-", i), Purpose: contracts.PurposeCompute}
				outcomes[i] = outcome{hash: inv.PaymentHash, amount: amount, res: payUntilFinal(t, nc, agent, req, deadline)}
			}
		})
	}
	for i := range payments {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(stopKilling)
	<-killerDone
	if t.Failed() {
		return
	}

	// Every reservation must be settled by reconciliation.
	kv, err := js.KeyValue(ctx, contracts.BucketLedger)
	if err != nil {
		t.Fatal(err)
	}
	var acct payer.Account
	for end := time.Now().Add(15 * time.Second); ; {
		e, err := kv.Get(ctx, "acct."+agent)
		if err != nil {
			t.Fatal(err)
		}
		acct = payer.Account{}
		_ = json.Unmarshal(e.Value(), &acct)
		if len(acct.Pending) == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("reservations still pending: %+v", acct.Pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.stop(); err != nil {
		t.Errorf("payer exit on SIGTERM: %v", err)
	}

	transfers := map[string]int{}
	var paidOut int64
	for _, tr := range ln.Transfers() {
		if tr.From != "survivor" {
			continue
		}
		transfers[tr.PaymentHash]++
		paidOut += tr.AmountMsat / 1000
	}
	var succeeded, failed, refused int
	codes := map[string]int{}
	var sum int64
	for i, o := range outcomes {
		n := transfers[o.hash]
		if n > 1 {
			t.Errorf("payment %d: invoice paid %d times", i, n)
		}
		rec, recErr := record(ctx, kv, o.hash)
		if o.res.Code != "" {
			codes[o.res.Status+":"+o.res.Code]++
		}
		switch o.res.Status {
		case contracts.PayStatusSucceeded:
			succeeded++
			sum += o.amount
			if n != 1 || recErr != nil || rec.Status != payer.StatusSucceeded || rec.Preimage != o.res.Preimage || rec.IdemKey != fmt.Sprint("pay-", i) {
				t.Errorf("payment %d succeeded: %d transfers, record %+v (%v)", i, n, rec, recErr)
			}
		case contracts.PayStatusFailed:
			failed++
			if n != 0 || recErr != nil || rec.Status != payer.StatusFailed {
				t.Errorf("payment %d failed: %d transfers, record %+v (%v)", i, n, rec, recErr)
			}
		case contracts.PayStatusRefused:
			refused++
			if n != 0 || !errors.Is(recErr, jetstream.ErrKeyNotFound) {
				t.Errorf("payment %d refused (%s): %d transfers, record %+v (%v)", i, o.res.Code, n, rec, recErr)
			}
		}
		// The idempotency index points at the one record.
		var hash string
		if e, err := kv.Get(ctx, "idem."+sha(fmt.Sprint("pay-", i))); err == nil {
			_ = json.Unmarshal(e.Value(), &hash)
			if hash != o.hash {
				t.Errorf("payment %d: idempotency key points at %s, want %s", i, hash, o.hash)
			}
		}
	}
	if len(transfers) != succeeded {
		t.Errorf("%d invoices paid, %d payments succeeded", len(transfers), succeeded)
	}
	if paidOut != sum {
		t.Errorf("wallet paid out %d sats, succeeded payments sum to %d", paidOut, sum)
	}
	bal, _ := ln.Account("survivor").Balance(ctx)
	if bal/1000 != fundSats-sum || ln.Total() != supply {
		t.Errorf("balance %d sats, want %d; total %d, supply %d", bal/1000, fundSats-sum, ln.Total(), supply)
	}
	if acct.Counters.DailySpent != sum {
		t.Errorf("budget counts %d sats spent today, succeeded sum %d", acct.Counters.DailySpent, sum)
	}
	if kills.Load() < 5 || succeeded < payments/2 {
		t.Errorf("too weak a run: %d kills, %d succeeded", kills.Load(), succeeded)
	}
	t.Logf("%d kills; %d succeeded, %d failed, %d refused %v; %d sats paid", kills.Load(), succeeded, failed, refused, codes, sum)
}

// payUntilFinal repeats req (same idempotency key) through timeouts, missing responders and
// in-flight answers, as a ticker would, until the payer gives a final answer.
func payUntilFinal(t *testing.T, nc *nats.Conn, agent string, req contracts.PayRequest, deadline time.Time) contracts.PayResult {
	b, _ := json.Marshal(req)
	for time.Now().Before(deadline) {
		msg, err := nc.Request(contracts.PaySubject(agent), b, 2*time.Second)
		if err != nil {
			time.Sleep(30 * time.Millisecond) // the payer is restarting
			continue
		}
		var res contracts.PayResult
		if err := json.Unmarshal(msg.Data, &res); err != nil {
			t.Errorf("bad reply %q", msg.Data)
			return res
		}
		if res.Status != contracts.PayStatusInFlight {
			return res
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("payment %s: no final answer before the deadline", req.IdempotencyKey)
	return contracts.PayResult{}
}

// freeAddr picks a free local port for the payer's HTTP endpoints (reused by each restart).
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitReady polls /readyz until the payer has reconciled and subscribed.
func waitReady(t *testing.T, url string) {
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Errorf("payer not ready at %s within 20s", url)
}

func record(ctx context.Context, kv jetstream.KeyValue, hash string) (payer.Payment, error) {
	var p payer.Payment
	e, err := kv.Get(ctx, "pay."+hash)
	if err != nil {
		return p, err
	}
	return p, json.Unmarshal(e.Value(), &p)
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
