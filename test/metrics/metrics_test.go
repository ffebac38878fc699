// Package metrics_test runs a devnet with the four services and a few agents, scrapes it with a
// real Prometheus, and checks that every query of the Grafana dashboard and the alert rules
// finds data (so a misspelled metric or label fails), that the rules evaluate, and that the
// exposed metrics follow deploy/METRICS.md and the naming rules and leak no secrets.
package metrics_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/devnet"
	"github.com/openagents/runtime/pkg/fleet"
	"github.com/openagents/runtime/pkg/identity"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/payer"
)

// exporterMetrics come from the prometheus-nats-exporter sidecar, which the devnet does not
// run: queries naming them are checked for validity only, not for data.
var exporterMetrics = []string{"gnatsd_varz_connections", "gnatsd_varz_slow_consumers"}

// secrets are what must never reach /metrics.
type secrets struct {
	strs     []string // exact strings: mnemonics, keys, nsecs, the KEK
	mnemonic [][]string
	pubkeys  []string // not secret, but never a label value either
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestLiveMetrics(t *testing.T) {
	promBin, promtoolBin := promBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	d, err := devnet.Start(ctx, devnet.Options{Dir: t.TempDir(), Services: true, MinTickInterval: time.Millisecond,
		TickTimeout: 20 * time.Second, BuyTimeout: 5 * time.Second, PayerSweep: time.Second,
		Thresholds: lifecycle.Thresholds{HibernateSats: 10, LowRunwayDays: 7},
		Log:        slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	go func() {
		for err := range d.Errors() {
			t.Errorf("devnet: %v", err)
		}
	}()

	// Prometheus first, so it sees counters from their first value on.
	jobs := slices.DeleteFunc(scrapeJobs(t), func(j string) bool { return j == "nats" }) // the NATS exporter is not in the devnet
	rulesFile, err := filepath.Abs(filepath.Join(repoRoot, "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	prom := startPrometheus(t, promBin, promConfig(jobs, d.HTTPAddr, rulesFile))
	prom.waitFor(t, "all targets up", 20*time.Second, func() (bool, string) {
		ts, err := prom.targets()
		if err != nil {
			return false, err.Error()
		}
		up := map[string]bool{}
		var detail []string
		for _, tg := range ts {
			up[tg.Labels["job"]] = tg.Health == "up"
			detail = append(detail, fmt.Sprintf("%s=%s %s", tg.Labels["job"], tg.Health, tg.LastError))
		}
		for _, j := range jobs {
			if !up[j] {
				return false, strings.Join(detail, "; ")
			}
		}
		return true, ""
	})

	sec := populate(t, ctx, d)

	// Wait for a successful tick to be scraped, then for every query to find data (counters
	// that first appear need two scrapes before rate() returns a sample).
	prom.waitFor(t, "a successful tick scraped", 40*time.Second, func() (bool, string) {
		s, err := prom.query(`sum(sa_ticker_ticks_total{status="success"}) > 0`)
		return err == nil && len(s) > 0, fmt.Sprint(err)
	})

	exprs := append(dashboardExprs(t), alertExprs(t)...)
	type check struct {
		where, query string
		needData     bool
	}
	var checks []check
	for _, e := range exprs {
		isAlert := strings.HasPrefix(e.Where, "alert ")
		exporter := slices.ContainsFunc(exporterMetrics, func(m string) bool { return strings.Contains(e.Expr, m) })
		// Alert expressions hold their threshold: empty while not firing. Their selectors must
		// each find data instead.
		checks = append(checks, check{e.Where, e.Expr, !isAlert && !exporter})
		sels := selectors(e.Expr)
		if len(sels) == 0 {
			t.Errorf("%s: no selector in %q", e.Where, e.Expr)
		}
		for _, s := range sels {
			checks = append(checks, check{e.Where + " selector", s, !slices.ContainsFunc(exporterMetrics, func(m string) bool { return strings.HasPrefix(s, m) })})
		}
	}
	missing := map[int]string{}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		clear(missing)
		for i, c := range checks {
			res, err := prom.query(c.query)
			switch {
			case err != nil:
				missing[i] = err.Error()
			case c.needData && len(res) == 0:
				missing[i] = "no data"
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	// Negative controls: a misspelled name or label value must find nothing, or the checks
	// above prove nothing.
	for _, typo := range []string{`sa_ticker_tick_total`, `sa_payer_agents{lifecycle="actve"}`, `sa_payer_agents{lifecyle="active"}`,
		`sum by (result) (rate(sa_publisher_event_total[5m]))`} {
		if res, err := prom.query(typo); err != nil || len(res) != 0 {
			t.Errorf("control %s: %d samples, %v (want none)", typo, len(res), err)
		}
	}
	t.Logf("%d queries from %d expressions checked", len(checks), len(exprs))
	for i, c := range checks {
		if c.needData {
			t.Logf("ok %s: %s", c.where, c.query)
		} else {
			t.Logf("valid (data not required) %s: %s", c.where, c.query)
		}
		if m, ok := missing[i]; ok {
			t.Errorf("%s: %s: %s", c.where, c.query, m)
		}
	}

	t.Run("rules evaluate", func(t *testing.T) {
		rs, err := prom.rules()
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != len(alertExprs(t)) {
			t.Errorf("prometheus loaded %d rules, alerts.yml has %d", len(rs), len(alertExprs(t)))
		}
		for _, r := range rs {
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q: %s", r.Name, r.Health, r.LastError)
			}
		}
	})

	text := scrapeText(t, d.HTTPAddr)
	t.Run("hygiene", func(t *testing.T) { checkHygiene(t, text, sec) })
	t.Run("promtool check metrics", func(t *testing.T) {
		cmd := exec.Command(promtoolBin, "check", "metrics")
		cmd.Stdin = bytes.NewReader(text)
		out, err := cmd.CombinedOutput()
		t.Logf("promtool check metrics: %v\n%s", err, out)
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "sa_") {
				t.Errorf("promtool: %s", line)
			}
		}
		if _, lint := err.(*exec.ExitError); err != nil && !lint {
			t.Fatalf("promtool check metrics did not run: %v", err)
		}
	})
}

// populate spawns and funds three agents with short heartbeats and makes the cases a quiet
// fleet never shows:
//   - carol is pinned to a provider that does not exist: her ticks fail (ticks{status="failure"});
//   - a payment request for more than carol has: a budget refusal (budget_refusals{reason},
//     payments{result="refused"});
//   - alice pays an invoice of another Lightning network: payments{result="failed"};
//   - a malformed trigger: dead_letters{reason="malformed"};
//   - a reservation with no payment record, as a payer crash between reserving and recording
//     leaves: reconciliation fences it (reconcile{outcome="abandoned"}).
func populate(t *testing.T, ctx context.Context, d *devnet.Devnet) secrets {
	t.Helper()
	channel, err := d.CreateChannel(ctx, "metrics", "agents under a scraping Prometheus")
	if err != nil {
		t.Fatal(err)
	}
	var sec secrets
	kek, err := os.ReadFile(d.KEKFile)
	if err != nil {
		t.Fatal(err)
	}
	sec.strs = append(sec.strs, strings.TrimSpace(string(kek)))
	nowhere := strings.Repeat("ab", 32)
	agents := []struct {
		name     string
		sats     int64
		provider string
	}{{"alice", 20_000, ""}, {"bob", 20_000, ""}, {"carol", 1_000, nowhere}}
	pub := map[string]string{}
	for _, a := range agents {
		sp, err := d.Fleet.Spawn(ctx, fleet.SpawnOptions{Name: a.name, HeartbeatSeconds: 2, Channels: []string{channel},
			Goals: []string{"say something"}, Provider: a.provider,
			Limits: nipsa.BudgetLimits{DailyLimitSats: 1_000_000, PerTickLimitSats: 100}})
		if err != nil {
			t.Fatalf("spawn %s: %v", a.name, err)
		}
		pub[a.name] = sp.Agent.Pubkey
		id, err := identity.FromMnemonic(sp.Mnemonic, identity.WithNetwork(identity.Regtest))
		if err != nil {
			t.Fatal(err)
		}
		sec.strs = append(sec.strs, sp.Mnemonic, id.SecretKey, id.Nsec, id.Wallet.SecretKey)
		sec.mnemonic = append(sec.mnemonic, strings.Fields(sp.Mnemonic))
		sec.pubkeys = append(sec.pubkeys, sp.Agent.Pubkey, sp.Agent.Npub)
		if _, err := d.FundFromFaucet(ctx, a.name, a.sats); err != nil {
			t.Fatalf("fund %s: %v", a.name, err)
		}
		if _, _, err := d.Fleet.Trigger(ctx, a.name, contracts.TriggerManual, "hello"); err != nil {
			t.Fatal(err)
		}
	}

	// A budget refusal: 5,000 sats asked of an agent that has 1,000.
	big, err := d.Ledger.Account("merchant").MakeInvoice(ctx, 5_000_000, "too much", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Fleet.Pay.Pay(ctx, pub["carol"], contracts.PayRequest{IdempotencyKey: "metrics-test:big", Bolt11: big.Bolt11,
		MaxSats: 5_000, Purpose: contracts.PurposeCompute})
	if err != nil || res.Status != contracts.PayStatusRefused || !strings.HasPrefix(res.Code, "budget_") {
		t.Fatalf("over-budget payment: %+v %v (want a budget refusal)", res, err)
	}

	// A failed payment: an invoice no node of this devnet issued has no route.
	foreign, err := devln.New(devln.Options{}).Account("elsewhere").MakeInvoice(ctx, 5_000, "unroutable", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	res, err = d.Fleet.Pay.Pay(ctx, pub["alice"], contracts.PayRequest{IdempotencyKey: "metrics-test:foreign", Bolt11: foreign.Bolt11,
		MaxSats: 5, Purpose: contracts.PurposeCompute})
	if err != nil || res.Status != contracts.PayStatusFailed {
		t.Fatalf("unroutable payment: %+v %v (want failed)", res, err)
	}

	// A malformed trigger goes to the dead-letter stream.
	if _, err := d.JS.Publish(ctx, contracts.TriggerSubject(pub["bob"]), []byte("{not json")); err != nil {
		t.Fatal(err)
	}

	// An orphaned reservation (payer crashed after reserving): the next sweep fences it. Alice
	// has a ledger account since her failed payment above.
	kv, err := d.JS.KeyValue(ctx, contracts.BucketLedger)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		e, err := kv.Get(ctx, "acct."+pub["alice"])
		if err != nil {
			t.Fatalf("alice's ledger account: %v", err)
		}
		var acct payer.Account
		if err := json.Unmarshal(e.Value(), &acct); err != nil {
			t.Fatal(err)
		}
		if acct.Pending == nil {
			acct.Pending = map[string]payer.Reservation{}
		}
		h := make([]byte, 32)
		_, _ = rand.Read(h)
		acct.Pending[hex.EncodeToString(h)] = payer.Reservation{AmountSats: 1, IdemKey: "metrics-test:orphan", At: time.Now().Add(-time.Hour)}
		b, _ := json.Marshal(acct)
		if _, err = kv.Update(ctx, "acct."+pub["alice"], b, e.Revision()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan reservation: %v", err)
		}
	}
	return sec
}

func scrapeText(t *testing.T, addr string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s %v", resp.Status, err)
	}
	return b
}

var (
	hex64Re    = regexp.MustCompile(`[0-9a-fA-F]{64}`)
	longHexRe  = regexp.MustCompile(`^[0-9a-fA-F]{16,}$`)
	bech32IDRe = regexp.MustCompile(`\b(npub|nsec|note|nevent|nprofile|naddr|ln(?:bc|tb|bcrt|sb)[0-9]*[munp]?)1[02-9ac-hj-np-z]{20,}`)
	durationRe = regexp.MustCompile(`(duration|latency|lag|elapsed|_time)`)
	badUnitRe  = regexp.MustCompile(`_(ms|milliseconds|microseconds|nanoseconds|minutes|hours|msat)(_|$)`)
)

// maxLabelVal bounds the distinct values of one label across a family; enumerations are far smaller.
const maxLabelVal = 16

func checkHygiene(t *testing.T, text []byte, sec secrets) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	doc := metricsDoc(t)

	exposed := map[string]bool{}
	for name, f := range fams {
		if !strings.HasPrefix(name, "sa_") {
			continue
		}
		exposed[name] = true
		typ := strings.ToLower(f.GetType().String())
		dm := doc[name]
		if dm == nil {
			t.Errorf("%s (%s) is exposed but not listed in deploy/METRICS.md", name, typ)
			continue
		}
		if dm.Type != typ {
			t.Errorf("%s: exposed as %s, METRICS.md says %s", name, typ, dm.Type)
		}
		switch {
		case typ == "counter" && !strings.HasSuffix(name, "_total"):
			t.Errorf("%s: a counter without the _total suffix", name)
		case typ != "counter" && strings.HasSuffix(name, "_total"):
			t.Errorf("%s: a %s with the _total suffix", name, typ)
		}
		if durationRe.MatchString(name) && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("%s: a duration not in _seconds", name)
		}
		if (typ == "histogram" || typ == "summary") && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("%s: a %s not in _seconds (every sa_ histogram is a duration; name the unit)", name, typ)
		}
		if badUnitRe.MatchString(name) {
			t.Errorf("%s: not a base unit (seconds, sats)", name)
		}
		if f.GetHelp() == "" {
			t.Errorf("%s: no HELP", name)
		}
		checkLabels(t, name, f, dm)
	}
	for name, dm := range doc {
		if strings.HasPrefix(name, "sa_") && !exposed[name] {
			t.Errorf("deploy/METRICS.md lists %s (%s), the devnet does not expose it", name, dm.Type)
		}
	}

	// Secrets and identifiers anywhere in the text, including other families and HELP.
	s := string(text)
	for _, x := range sec.strs {
		if x != "" && strings.Contains(s, x) {
			t.Errorf("/metrics contains a secret (%.8s...)", x)
		}
	}
	for _, x := range sec.pubkeys {
		if strings.Contains(s, x) {
			t.Errorf("/metrics contains an agent identifier %s", x)
		}
	}
	for _, words := range sec.mnemonic {
		for i := 0; i+3 <= len(words); i++ {
			if w := strings.Join(words[i:i+3], " "); strings.Contains(s, w) {
				t.Errorf("/metrics contains mnemonic words %q...", words[i])
			}
		}
	}
	if m := bech32IDRe.FindString(s); m != "" {
		t.Errorf("/metrics contains a bech32 key, event or invoice: %.12s...", m)
	}
	if strings.Contains(s, "nsec1") {
		t.Error("/metrics contains nsec1")
	}
	if m := hex64Re.FindString(s); m != "" {
		t.Errorf("/metrics contains 64 hex digits (a key, event id or hash): %.12s...", m)
	}
}

func checkLabels(t *testing.T, name string, f *dto.MetricFamily, dm *docMetric) {
	t.Helper()
	values := map[string]map[string]bool{}
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if values[lp.GetName()] == nil {
				values[lp.GetName()] = map[string]bool{}
			}
			values[lp.GetName()][lp.GetValue()] = true
		}
	}
	var got, want []string
	for l := range values {
		got = append(got, l)
	}
	for l := range dm.Labels {
		want = append(want, l)
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: labels %v, METRICS.md documents %v", name, got, want)
	}
	for l, vs := range values {
		if len(vs) > maxLabelVal {
			t.Errorf("%s{%s}: %d distinct values: unbounded?", name, l, len(vs))
		}
		for v := range vs {
			if longHexRe.MatchString(v) || hex64Re.MatchString(v) || bech32IDRe.MatchString(v) || len(v) > 80 {
				t.Errorf("%s{%s=%q}: looks like an identifier (pubkey, event id, hash, invoice)", name, l, v)
			}
			if dl := dm.Labels[l]; dl != nil && !dl.allows(v) {
				t.Errorf("%s{%s=%q}: value not documented in deploy/METRICS.md (documented: %v%v)", name, l, v, dl.Values, dl.Prefixes)
			}
		}
	}
}
