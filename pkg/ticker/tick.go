package ticker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip04"
	"github.com/nbd-wtf/go-nostr/nip44"
	"github.com/nbd-wtf/go-nostr/nip59"

	"github.com/openagents/runtime/pkg/actions"
	"github.com/openagents/runtime/pkg/compute"
	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/invoice"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/publisher"
	"github.com/openagents/runtime/pkg/registry"
	"github.com/openagents/runtime/pkg/trajectory"
)

// run is the state of one tick as it moves through its steps.
type run struct {
	t        *Ticker
	a        registry.Agent
	keys     *agentKeys
	triggers []contracts.Trigger
	dropped  int
	tickID   string
	session  string
	started  time.Time
	relays   []string
	rec      *trajectory.Recorder
	events   []nostr.Event // signed, published together at the end
	futures  []jetstream.PubAckFuture

	request     nostr.Event
	state       nipsa.AgentState
	stateRev    uint64
	stateLoaded bool
	stateAt     nostr.Timestamp // created_at of the state this tick read
	balance     contracts.BalanceReply
	obs         []observation
	prompt      string
	answer      compute.Result
	acts        []actions.Action
	done        []nipsa.TickAction
	goalsUpd    int
	status      string
	errText     string
	model       string
	costSats    int64
	durable     bool
	resultID    string
	skipNote    string
	providers   []compute.Provider
}

type tickOutcome struct {
	Outcome
	durable bool
}

// tick runs the 13 steps of a tick for the triggers it answers. Each step is timed; a step
// that fails ends the tick with status failure (or timeout) but the tick still publishes its
// trajectory and result, so every accepted trigger ends in exactly one TickResult.
func (t *Ticker) tick(parent context.Context, a registry.Agent, triggers []contracts.Trigger, dropped int) tickOutcome {
	r := &run{t: t, a: a, triggers: triggers, dropped: dropped, started: t.cfg.Now(), status: nipsa.TickSuccess}
	r.tickID = tickID(a.Pubkey, triggers[0].ID)
	r.session = r.tickID[:16] + "-" + randomHex(4)
	r.relays = a.Relays
	if len(r.relays) == 0 {
		r.relays = t.cfg.Relays
	}
	ctx, cancel := context.WithTimeout(parent, t.cfg.TickTimeout)
	defer cancel()

	keys, err := t.keys.get(ctx, a.Pubkey)
	if err != nil {
		// Without the key nothing can be signed: leave the triggers in the inbox and say why.
		t.cfg.Log.Error("agent key unavailable", "agent", a.Name, "err", err)
		return tickOutcome{}
	}
	r.keys = keys
	r.rec = trajectory.NewRecorder(r.session, r.tickID, "", r.started)

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"request", r.publishRequest},      // (1) triggers received, (2) TickRequest 38010
		{"state", r.loadState},             // (3) fetch and open AgentState 38001
		{"balance", r.checkBalance},        // (4) confirmed balance, lifecycle
		{"prompt", r.buildPrompt},          // (5) prompt from state, goals, memory, observations
		{"discover", r.discover},           // (6) providers (NIP-89), cheapest within budget
		{"inference", r.buyInference},      // (7) job, invoice checked, paid via the payer, result
		{"parse", r.parseActions},          // (8) actions from the answer
		{"act", r.executeActions},          // (9) post, DM, channel, zap, goals
		{"seal", r.sealState},              // (10) new state sealed, stored with CAS
		{"trajectory", r.recordTrajectory}, // (11) 38030/38031
		{"result", r.publishResult},        // (12) TickResult 38011
		{"durable", r.awaitDurable},        // (13) every event stored before the trigger is acked
	}
	for _, s := range steps {
		if r.status != nipsa.TickSuccess && !finalStep(s.name) {
			continue
		}
		begin := time.Now()
		err := s.fn(ctx)
		t.m.steps.WithLabelValues(s.name).Observe(time.Since(begin).Seconds())
		if err != nil {
			if s.name == "durable" {
				t.cfg.Log.Warn("tick result not durable; triggers stay in the inbox", "agent", a.Name, "tick", r.tickID, "err", err)
				return tickOutcome{}
			}
			r.fail(ctx, s.name, err)
		}
	}
	t.m.ticks.WithLabelValues(r.status).Inc()
	t.m.duration.Observe(time.Since(r.started).Seconds())
	var names []string
	for _, d := range r.done {
		if d.Error == "" {
			names = append(names, d.Type)
		}
	}
	t.cfg.Log.Info("tick", "agent", a.Name, "tick", r.tickID, "status", r.status, "cost_sats", r.costSats,
		"actions", len(names), "triggers", len(triggers), "ms", time.Since(r.started).Milliseconds())
	return tickOutcome{durable: r.durable, Outcome: Outcome{Agent: a.Pubkey, TickID: r.tickID, Status: r.status,
		CostSats: r.costSats, Actions: names, Error: r.errText, Triggers: len(triggers), ResultID: r.resultID,
		FinishedAt: t.cfg.Now()}}
}

// finalStep steps run whatever happened before: a failed tick still records its state,
// trajectory and result.
func finalStep(name string) bool {
	return name == "seal" || name == "trajectory" || name == "result" || name == "durable"
}

var errSkip = errors.New("skipped")

func (r *run) fail(ctx context.Context, step string, err error) {
	if errors.Is(err, errSkip) {
		r.status = nipsa.TickSkipped
		return
	}
	if r.status == nipsa.TickSuccess {
		r.status = nipsa.TickFailure
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, compute.ErrTimeout) || ctx.Err() != nil {
			r.status = nipsa.TickTimeout
		}
		r.errText = step + ": " + err.Error()
	}
	r.rec.ToolResult(step, map[string]any{"error": err.Error()}, true)
}

// tickID is deterministic so a tick re-run after a crash replaces its own TickRequest and
// TickResult on relays instead of adding a second pair.
func tickID(agent, firstTrigger string) string {
	h := sha256.Sum256([]byte("tick:" + agent + ":" + firstTrigger))
	return hex.EncodeToString(h[:16])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sign signs ev as the agent and queues it for publishing at the end of the tick.
func (r *run) sign(ev nostr.Event) (nostr.Event, error) {
	if ev.CreatedAt == 0 {
		ev.CreatedAt = nostr.Timestamp(r.t.cfg.Now().Unix())
	}
	if ev.Tags == nil {
		ev.Tags = nostr.Tags{}
	}
	if err := ev.Sign(r.keys.sk); err != nil {
		return ev, err
	}
	r.events = append(r.events, ev)
	return ev, nil
}

// (2) TickRequest.
func (r *run) publishRequest(ctx context.Context) error {
	first := r.triggers[0]
	req := nipsa.TickRequest{TickID: r.tickID, Runner: r.a.Pubkey, Trigger: first.Type, Agent: r.a.Pubkey}
	if first.Type == contracts.TriggerFunded {
		req.Trigger = contracts.TriggerZap
	}
	if first.Event != nil {
		req.EventID = first.Event.ID
	}
	ev, err := nipsa.TickRequestEvent(req)
	if err != nil {
		return err
	}
	r.request, err = r.sign(ev)
	if err != nil {
		return err
	}
	// Published now (not at the end) so the relay shows ticks in progress.
	return r.flush(ctx)
}

func (r *run) flush(ctx context.Context) error {
	if len(r.events) == 0 {
		return nil
	}
	futures, err := publisher.Submit(r.t.cfg.JS, r.a.Pubkey, r.relays, r.events...)
	r.futures = append(r.futures, futures...)
	r.events = r.events[len(futures):]
	return err
}

// (3) State: KV is the operational copy (compare-and-swap on its revision); the relay copy is
// what the world sees.
func (r *run) loadState(ctx context.Context) error {
	e, err := r.t.states.Get(ctx, r.a.Pubkey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		r.state = nipsa.AgentState{Beliefs: map[string]any{}}
		r.stateLoaded = true
		return nil
	}
	if err != nil {
		return err
	}
	var ev nostr.Event
	if err := json.Unmarshal(e.Value(), &ev); err != nil {
		return fmt.Errorf("stored state is not an event: %w", err)
	}
	st, err := r.keys.sealer.Open(&ev)
	if err != nil {
		return err
	}
	r.state, r.stateRev, r.stateAt = st, e.Revision(), ev.CreatedAt
	r.stateLoaded = true
	return nil
}

// (4) Balance and lifecycle. An unknown balance never changes the lifecycle; the tick goes on
// only when the agent's lifecycle lets it.
func (r *run) checkBalance(ctx context.Context) error {
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	bal, err := r.t.pay.Balance(bctx, r.a.Pubkey)
	r.balance = bal
	lc := lifecycle.State(r.a.Lifecycle)
	if err == nil && bal.Known {
		lc = lifecycle.State(bal.Lifecycle)
		r.state.WalletBalanceSats = bal.BalanceSats
	}
	r.rec.ToolResult("balance", map[string]any{"known": bal.Known, "balance_sats": bal.BalanceSats, "lifecycle": string(lc)}, false)
	funds := false
	for _, trg := range r.triggers {
		if trg.Type == contracts.TriggerZap || trg.Type == contracts.TriggerFunded {
			funds = true
		}
	}
	if !lifecycle.Ticks(lc, funds) {
		r.skipNote = "lifecycle " + string(lc)
		return fmt.Errorf("%w: %s", errSkip, r.skipNote)
	}
	if !bal.Known {
		return fmt.Errorf("balance unknown: %s", bal.Error)
	}
	return nil
}

// (5) Prompt.
func (r *run) buildPrompt(ctx context.Context) error {
	for _, trg := range r.triggers {
		o := r.observe(trg)
		r.obs = append(r.obs, o)
		r.rec.Observation(o.Text, map[string]any{"trigger": trg.Type, "from": o.From, "event": o.EventID})
	}
	if r.dropped > 0 {
		r.rec.Observation(fmt.Sprintf("%d more triggers were dropped (inbox full)", r.dropped), nil)
	}
	channel := ""
	if len(r.a.Channels) > 0 {
		channel = r.a.Channels[0]
	}
	r.prompt = buildPrompt(r.a, r.state, r.obs, channel, r.balance.BalanceSats, nil)
	return nil
}

func (r *run) observe(trg contracts.Trigger) observation {
	o := observation{Type: trg.Type, Text: trg.Note}
	if trg.Type == contracts.TriggerChannel {
		o.Type = "channel"
	}
	ev := trg.Event
	if ev == nil {
		if o.Text == "" {
			o.Text = trg.Type
		}
		return o
	}
	o.From, o.EventID = ev.PubKey, ev.ID
	switch ev.Kind {
	case nipsa.KindEncryptedDM:
		if ss, err := nip04.ComputeSharedSecret(ev.PubKey, r.keys.sk); err == nil {
			if txt, err := nip04.Decrypt(ev.Content, ss); err == nil {
				o.Text = txt
				return o
			}
		}
		o.Text = "(a DM that could not be decrypted)"
	case nipsa.KindGiftWrap:
		// NIP-17: the wrap is from a throwaway key; the sender is the seal's author.
		rumor, err := nip59.GiftUnwrap(*ev, func(other, ciphertext string) (string, error) {
			ck, err := nip44.GenerateConversationKey(other, r.keys.sk)
			if err != nil {
				return "", err
			}
			return nip44.Decrypt(ciphertext, ck)
		})
		if err != nil || rumor.Kind != nipsa.KindChatMessage {
			o.Text = "(a private message that could not be opened)"
			return o
		}
		o.From, o.Text = rumor.PubKey, rumor.Content
	case nipsa.KindZapReceipt:
		o.Text = "zap received"
		if desc := ev.Tags.Find("description"); len(desc) > 1 {
			var zr nostr.Event
			if json.Unmarshal([]byte(desc[1]), &zr) == nil {
				o.From = zr.PubKey
				if zr.Content != "" {
					o.Text = "zap received: " + zr.Content
				}
			}
		}
	default:
		o.Text = ev.Content
	}
	return o
}

// (6) Providers: cheapest first, within the per-tick budget and what the agent can spend.
func (r *run) discover(ctx context.Context) error {
	all, err := r.t.disc.get(ctx)
	if err != nil {
		return err
	}
	limitMsat := r.a.Limits.PerTickLimitSats * 1000
	spendable := (r.balance.BalanceSats - r.a.Limits.ReservedSats) * 1000
	for _, p := range all {
		if r.t.cfg.Provider != "" && p.Pubkey != r.t.cfg.Provider || r.a.Provider != "" && p.Pubkey != r.a.Provider {
			continue
		}
		if p.Network != "" && p.Network != r.t.cfg.Network {
			continue
		}
		if limitMsat > 0 && p.PriceMsat > limitMsat || p.PriceMsat > spendable {
			continue
		}
		r.providers = append(r.providers, p)
	}
	sort.SliceStable(r.providers, func(i, j int) bool { return r.providers[i].PriceMsat < r.providers[j].PriceMsat })
	r.rec.ToolResult("discover", map[string]any{"found": len(all), "affordable": len(r.providers)}, false)
	if len(r.providers) == 0 {
		return fmt.Errorf("no provider within budget (%d found)", len(all))
	}
	return nil
}

// (7) Inference: request, invoice checked, paid through the payer, result.
func (r *run) buyInference(ctx context.Context) error {
	buyer := &compute.Buyer{SecretKey: r.keys.sk, Pool: r.t.pool, Relays: r.relays, Network: r.t.cfg.Network, Timeout: r.t.cfg.BuyTimeout}
	budgetMsat := r.a.Limits.PerTickLimitSats * 1000
	req := compute.Request{Prompt: r.prompt, MaxTokens: r.t.cfg.MaxTokens, BidMsat: budgetMsat, BudgetMsat: budgetMsat}
	r.rec.ToolUse("inference", map[string]any{"providers": len(r.providers), "bid_msat": budgetMsat})
	res, err := buyer.BuyFirst(ctx, r.providers, req, r.payCompute)
	if err != nil {
		return err
	}
	r.answer = res
	r.model = res.Provider
	r.costSats += (res.CostMsat + 999) / 1000
	r.rec.ToolResult("inference", map[string]any{"provider": res.Provider, "cost_msat": res.CostMsat,
		"payment_hash": res.PaymentHash, "tokens_in": res.TokensIn, "tokens_out": res.TokensOut}, false)
	r.rec.Thinking(res.Text)
	return nil
}

// ErrPayment: the payer refused, failed, or could not say (in flight).
var ErrPayment = errors.New("payment not made")

func (r *run) payCompute(ctx context.Context, bolt11 string, amountMsat int64) (string, error) {
	return r.pay(ctx, bolt11, amountMsat, contracts.PurposeCompute)
}

func (r *run) pay(ctx context.Context, bolt11 string, amountMsat int64, purpose string) (string, error) {
	d, ok := compute.CheckedInvoice(ctx, bolt11) // decoded by the buyer a moment ago
	if !ok {
		var err error
		if d, err = invoice.Decode(bolt11); err != nil {
			return "", err
		}
	}
	req := contracts.PayRequest{IdempotencyKey: purpose + ":" + r.tickID + ":" + d.PaymentHash, Bolt11: bolt11,
		MaxSats: (amountMsat + 999) / 1000, TickID: r.tickID, Purpose: purpose}
	res, err := r.t.pay.Pay(ctx, r.a.Pubkey, req)
	if err != nil {
		// No answer: the payment may have happened. Record it as in flight; never retry here.
		r.rec.ToolResult("pay", map[string]any{"payment_hash": d.PaymentHash, "status": "unknown", "error": err.Error()}, true)
		return "", fmt.Errorf("%w: outcome unknown: %v", ErrPayment, err)
	}
	r.rec.ToolResult("pay", map[string]any{"payment_hash": d.PaymentHash, "status": res.Status, "amount_sats": res.AmountSats, "code": res.Code}, res.Status != contracts.PayStatusSucceeded)
	if res.Status != contracts.PayStatusSucceeded {
		return "", fmt.Errorf("%w: %s %s %s", ErrPayment, res.Status, res.Code, res.Error)
	}
	return res.Preimage, nil
}

// (8) Actions. Invalid items are recorded and skipped; an answer with nothing usable fails.
func (r *run) parseActions(ctx context.Context) error {
	acts, problems, err := actions.Parse(r.answer.Text)
	for _, p := range problems {
		r.rec.ToolResult("parse", map[string]any{"problem": p.String()}, true)
	}
	if err != nil {
		return fmt.Errorf("model output unusable: %w (%d problems)", err, len(problems))
	}
	r.acts = acts
	return nil
}

// (9) Execute actions.
func (r *run) executeActions(ctx context.Context) error {
	for _, a := range r.acts {
		err := r.execute(ctx, a)
		ta := nipsa.TickAction{Type: a.Type, Details: a.Details()}
		if err != nil {
			ta.Error = err.Error()
		}
		r.done = append(r.done, ta)
		details := a.Details()
		if err != nil {
			details["error"] = err.Error()
		}
		r.rec.Action(a.Type, details)
	}
	return nil
}

func (r *run) execute(ctx context.Context, a actions.Action) error {
	now := r.t.cfg.Now()
	switch a.Type {
	case actions.Post:
		_, err := r.sign(nostr.Event{Kind: nipsa.KindTextNote, Content: a.Content})
		return err
	case actions.DM:
		ss, err := nip04.ComputeSharedSecret(a.To, r.keys.sk)
		if err != nil {
			return err
		}
		ct, err := nip04.Encrypt(a.Content, ss)
		if err != nil {
			return err
		}
		_, err = r.sign(nostr.Event{Kind: nipsa.KindEncryptedDM, Content: ct, Tags: nostr.Tags{{"p", a.To}}})
		return err
	case actions.Channel:
		ch := a.Channel
		if ch == "" && len(r.a.Channels) > 0 {
			ch = r.a.Channels[0]
		}
		if ch == "" {
			return errors.New("agent listens to no channel")
		}
		relay := ""
		if len(r.relays) > 0 {
			relay = r.relays[0]
		}
		_, err := r.sign(nostr.Event{Kind: nipsa.KindChannelMessage, Content: a.Content, Tags: nostr.Tags{{"e", ch, relay, "root"}}})
		return err
	case actions.Zap:
		return r.zap(ctx, a)
	case actions.GoalAdd:
		id := fmt.Sprintf("g%d", len(r.state.Goals)+1)
		r.state.Goals = append(r.state.Goals, nipsa.Goal{ID: id, Description: a.Description, Priority: a.Priority,
			CreatedAt: now.Unix(), Status: nipsa.GoalActive})
		r.goalsUpd++
		return nil
	case actions.GoalUpdate, actions.GoalComplete:
		for i := range r.state.Goals {
			if r.state.Goals[i].ID != a.ID {
				continue
			}
			g := &r.state.Goals[i]
			if a.Type == actions.GoalComplete {
				g.Progress = 1
			} else {
				g.Progress = a.Progress
			}
			*g = nipsa.NormalizeGoal(*g)
			r.goalsUpd++
			return nil
		}
		return fmt.Errorf("no goal %q", a.ID)
	}
	return fmt.Errorf("unknown action type %q", a.Type)
}

// zap pays another agent of the fleet: its payer issues the invoice, ours pays it within budget.
func (r *run) zap(ctx context.Context, a actions.Action) error {
	if a.To == r.a.Pubkey {
		return errors.New("an agent cannot zap itself")
	}
	if _, _, err := r.t.cfg.Registry.Get(ctx, a.To); err != nil {
		return fmt.Errorf("zap target is not an agent of this fleet: %w", err)
	}
	inv, err := r.t.pay.Invoice(ctx, a.To, a.Sats, "zap from "+r.a.Name)
	if err != nil {
		return err
	}
	if _, err := r.pay(ctx, inv.Bolt11, a.Sats*1000, contracts.PurposeZap); err != nil {
		return err
	}
	r.costSats += a.Sats
	return nil
}

// (10) Seal the new state and store it with compare-and-swap: a tick never overwrites a newer
// state.
func (r *run) sealState(ctx context.Context) error {
	if r.status == nipsa.TickSkipped || !r.stateLoaded {
		return nil
	}
	now := r.t.cfg.Now()
	r.state.TickCount++
	r.state.LastTick = now.Unix()
	summary := fmt.Sprintf("tick %s: %s", r.tickID[:8], r.status)
	if len(r.done) > 0 {
		var kinds []string
		for _, d := range r.done {
			kinds = append(kinds, d.Type)
		}
		summary += " (" + strings.Join(kinds, ", ") + ")"
	}
	if r.errText != "" {
		summary += ": " + clip(r.errText, 200)
	}
	r.state.Memory = append(r.state.Memory, nipsa.Memory{Type: "tick", Content: summary, Timestamp: now.Unix()})
	if n := len(r.state.Memory); n > maxMemory {
		r.state.Memory = r.state.Memory[n-maxMemory:]
	}
	if r.state.Beliefs == nil {
		r.state.Beliefs = map[string]any{}
	}
	ev, _, err := r.keys.sealer.Seal(r.state)
	if err != nil {
		return err
	}
	// Relays keep one AgentState per agent and break ties in created_at by id, so two ticks in
	// one second could leave the older state on the relay: never reuse the previous second.
	ev.CreatedAt = max(nostr.Timestamp(now.Unix()), r.stateAt+1)
	signed, err := r.sign(ev)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(signed)
	if r.stateRev == 0 {
		_, err = r.t.states.Create(ctx, r.a.Pubkey, b)
	} else {
		_, err = r.t.states.Update(ctx, r.a.Pubkey, b, r.stateRev)
	}
	if err != nil {
		return fmt.Errorf("state not stored (a newer state exists?): %w", err)
	}
	// Public goals follow the state.
	if r.goalsUpd > 0 {
		gev, err := nipsa.GoalsEvent(nipsa.PublicGoals{Goals: r.state.Goals})
		gev.CreatedAt = signed.CreatedAt
		if err == nil {
			_, _ = r.sign(gev)
		}
	}
	return nil
}

const maxMemory = 50

// (11) Trajectory: session (38030) and its events (38031).
func (r *run) recordTrajectory(ctx context.Context) error {
	sess := r.rec.Session(r.t.cfg.Now())
	sess.Model = r.model
	if sess.Model == "" {
		sess.Model = "none"
	}
	sev, err := nipsa.SessionEvent(sess)
	if err != nil {
		return err
	}
	if _, err := r.sign(sev); err != nil {
		return err
	}
	for _, te := range r.rec.Events() {
		ev, err := nipsa.TrajectoryEventEvent(te)
		if err != nil {
			return err
		}
		if _, err := r.sign(ev); err != nil {
			return err
		}
	}
	return nil
}

// (12) TickResult.
func (r *run) publishResult(ctx context.Context) error {
	trigIDs := make([]string, 0, len(r.triggers))
	for _, trg := range r.triggers {
		trigIDs = append(trigIDs, trg.ID)
	}
	content := nipsa.TickResultContent{TokensIn: int64(r.answer.TokensIn), TokensOut: int64(r.answer.TokensOut),
		CostSats: r.costSats, GoalsUpdated: r.goalsUpd, Actions: r.done, Error: r.errText, Session: r.session, Triggers: trigIDs}
	if content.Actions == nil {
		content.Actions = []nipsa.TickAction{}
	}
	if r.status == nipsa.TickSkipped {
		content.Error = r.skipNote
	}
	res := nipsa.TickResult{TickID: r.tickID, RequestID: r.request.ID, Runner: r.a.Pubkey, Status: r.status,
		DurationMS: r.t.cfg.Now().Sub(r.started).Milliseconds(), ActionCount: len(r.done),
		TrajectoryHash: r.rec.Hash(), Content: content}
	ev, err := nipsa.TickResultEvent(res)
	if err != nil {
		return err
	}
	signed, err := r.sign(ev)
	if err != nil {
		return err
	}
	r.resultID = signed.ID
	return nil
}

// (13) Durable: every event of the tick is stored in SA_PUBLISH (the publisher delivers it
// with retries) before the triggers are acked.
func (r *run) awaitDurable(ctx context.Context) error {
	if r.resultID == "" {
		// Every accepted trigger must end in a TickResult: without one, nothing is acked.
		return errors.New("no TickResult was built")
	}
	// A tick that timed out still gets a little time to record its result.
	wctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
	}
	if err := r.flush(wctx); err != nil {
		return err
	}
	if err := publisher.Await(wctx, r.futures...); err != nil {
		return err
	}
	r.durable = true
	return nil
}
