package compute

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/invoice"
	"github.com/openagents/runtime/pkg/nipsa"
)

// session is one purchase from one provider. pay is called at most once per session.
type session struct {
	b      *Buyer
	p      Provider
	r      Request
	bid    int64
	pay    Pay
	relays []string
	res    Result
	paid   bool
	reqID  string
	jobID  string       // NIP-28
	chunks []string     // NIP-28 StreamChunk text so far
	sent   *nostr.Event // the request, for the PaymentSent reply
}

// handler reads one event; done ends the session with s.res (or err).
type handler func(ctx context.Context, ev *nostr.Event) (done bool, err error)

func (s *session) nip90(ctx context.Context) (Result, error) {
	tags := nostr.Tags{{"i", s.r.Prompt, "text"}}
	if s.r.Model != "" {
		tags = append(tags, nostr.Tag{"param", "model", s.r.Model})
	}
	if s.r.MaxTokens > 0 {
		tags = append(tags, nostr.Tag{"param", "max_tokens", strconv.Itoa(s.r.MaxTokens)})
	}
	tags = append(tags,
		nostr.Tag{"bid", strconv.FormatInt(s.bid, 10)},
		append(nostr.Tag{"relays"}, s.relays...),
		nostr.Tag{"p", s.p.Pubkey},
		altTag())
	req := &nostr.Event{Kind: nipsa.KindTextGeneration, Tags: tags}
	filter := func(req *nostr.Event) nostr.Filter {
		return nostr.Filter{Kinds: []int{nipsa.KindJobFeedback, nipsa.KindTextGenResult},
			Authors: []string{s.p.Pubkey}, Tags: nostr.TagMap{"e": {req.ID}}}
	}
	return s.run(ctx, req, filter, s.onNIP90)
}

func (s *session) nip28(ctx context.Context) (Result, error) {
	body := map[string]any{"type": "JobRequest", "kind": nipsa.KindTextGeneration, "prompt": s.r.Prompt,
		"max_tokens": s.r.MaxTokens, "target_provider": s.p.Pubkey}
	if s.r.Model != "" {
		body["model"] = s.r.Model
	}
	content, _ := json.Marshal(body)
	req := &nostr.Event{Kind: nipsa.KindChannelMessage, Content: string(content),
		Tags: nostr.Tags{{"e", s.p.Channel, s.relays[0], "root"}, {"p", s.p.Pubkey}, altTag()}}
	filter := func(req *nostr.Event) nostr.Filter {
		// Replies carry the job id in their content, not necessarily a tag naming the request,
		// so listen to the provider in its channel from shortly before the request.
		since := req.CreatedAt - 60
		return nostr.Filter{Kinds: []int{nipsa.KindChannelMessage}, Authors: []string{s.p.Pubkey},
			Tags: nostr.TagMap{"e": {s.p.Channel}}, Since: &since}
	}
	return s.run(ctx, req, filter, s.onNIP28)
}

// run signs req, subscribes to the answers BEFORE publishing it (so none is missed), publishes,
// and feeds answers to h until it is done or a wait times out. The wait for the invoice and the
// wait for the result after paying each get Buyer.Timeout.
func (s *session) run(ctx context.Context, req *nostr.Event, filter func(*nostr.Event) nostr.Filter, h handler) (Result, error) {
	req.CreatedAt = nostr.Now()
	if err := req.Sign(s.b.SecretKey); err != nil {
		return Result{}, fmt.Errorf("%w: sign: %v", ErrBadRequest, err)
	}
	s.reqID, s.jobID, s.sent = req.ID, "job_"+req.ID[:16], req

	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	wait := time.NewTimer(s.b.timeout())
	defer wait.Stop()
	eose := make(chan struct{})
	events := s.b.Pool.SubscribeManyNotifyEOSE(subCtx, s.relaysCopy(), filter(req), eose)
	select {
	case <-eose:
	case <-wait.C:
		return Result{}, fmt.Errorf("%w: subscribing took longer than %s", ErrTimeout, s.b.timeout())
	case <-ctx.Done():
		return Result{}, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	}
	if err := s.publish(ctx, *req); err != nil {
		return Result{}, err
	}
	for {
		select {
		case <-ctx.Done():
			return s.expired(ctx.Err())
		case <-wait.C:
			return s.expired(fmt.Errorf("nothing within %s", s.b.timeout()))
		case ie, ok := <-events:
			if !ok {
				events = nil // every relay is gone; only the timer can end this now
				continue
			}
			if ie.Event.PubKey != s.p.Pubkey {
				continue // anyone can post feedback; only the provider's counts
			}
			wasPaid := s.paid
			done, err := h(ctx, ie.Event)
			if err != nil {
				return s.result(), err
			}
			if done {
				s.res.TokensIn, s.res.TokensOut = words(s.r.Prompt), words(s.res.Text)
				return s.res, nil
			}
			if s.paid && !wasPaid {
				wait.Reset(s.b.timeout())
			}
		}
	}
}

// result is what an error return carries: the payment facts once paid, else nothing.
func (s *session) result() Result {
	if s.paid || s.res.PaymentHash != "" {
		return Result{Provider: s.res.Provider, CostMsat: s.res.CostMsat, PaymentHash: s.res.PaymentHash}
	}
	return Result{}
}

func (s *session) expired(cause error) (Result, error) {
	if s.paid {
		return s.result(), fmt.Errorf("%w: paid %d msat (payment hash %s): %w", ErrPaidNoResult, s.res.CostMsat, s.res.PaymentHash, cause)
	}
	return Result{}, fmt.Errorf("%w: %w", ErrTimeout, cause)
}

func (s *session) failed(msg string) error {
	msg = clipMsg(msg)
	if s.paid {
		return fmt.Errorf("%w: provider error after payment: %s", ErrPaidNoResult, msg)
	}
	return fmt.Errorf("%w: %s", ErrProviderError, msg)
}

func (s *session) onNIP90(ctx context.Context, ev *nostr.Event) (bool, error) {
	if !hasTag(ev, "e", s.reqID) {
		return false, nil
	}
	switch ev.Kind {
	case nipsa.KindTextGenResult:
		s.res.Text = ev.Content
		return true, nil
	case nipsa.KindJobFeedback:
		status, extra := "", ""
		if t := ev.Tags.Find("status"); t != nil {
			status = t[1]
			if len(t) > 2 {
				extra = t[2]
			}
		}
		if status == "error" {
			return true, s.failed(firstNonEmpty(extra, ev.Content, "no reason given"))
		}
		if s.paid {
			return false, nil // a second invoice is never paid
		}
		bolt11, stated := "", ""
		if t := ev.Tags.Find("amount"); t != nil {
			stated = t[1]
			if len(t) > 2 && looksLikeBolt11(t[2]) {
				bolt11 = t[2]
			}
		}
		if bolt11 == "" {
			bolt11 = findBolt11(ev.Content)
		}
		if bolt11 == "" {
			if status == "payment-required" {
				return true, fmt.Errorf("%w: payment-required without a bolt11 invoice", ErrInvoiceRefused)
			}
			return false, nil // processing, partial, success: keep waiting for the result
		}
		return false, s.checkAndPay(ctx, bolt11, stated, "")
	}
	return false, nil
}

// channelMsg is a kind 42 of the channel protocol as the buyer reads it; unknown fields ignored.
type channelMsg struct {
	Type        string          `json:"type"`
	JobID       string          `json:"job_id"`
	Bolt11      string          `json:"bolt11"`
	AmountMsats json.RawMessage `json:"amount_msats"`
	PaymentHash string          `json:"payment_hash"`
	Result      string          `json:"result"`
	Chunk       string          `json:"chunk"`
	IsFinal     bool            `json:"is_final"`
	Message     string          `json:"message"`
}

func (s *session) onNIP28(ctx context.Context, ev *nostr.Event) (bool, error) {
	var m channelMsg
	if json.Unmarshal([]byte(ev.Content), &m) != nil || m.JobID != s.jobID {
		return false, nil
	}
	switch m.Type {
	case "Invoice":
		if s.paid {
			return false, nil
		}
		stated := strings.Trim(string(m.AmountMsats), `"`)
		if err := s.checkAndPay(ctx, m.Bolt11, stated, m.PaymentHash); err != nil {
			return true, err
		}
		// PaymentSent only hurries the provider: it must see the settlement in its own wallet.
		body, _ := json.Marshal(map[string]string{"type": "PaymentSent", "job_id": s.jobID, "payment_id": s.res.PaymentHash})
		msg := nostr.Event{Kind: nipsa.KindChannelMessage, CreatedAt: nostr.Now(), Content: string(body),
			Tags: nostr.Tags{{"e", s.p.Channel, s.relays[0], "root"}, {"e", ev.ID, s.relays[0], "reply"}, {"p", s.p.Pubkey}}}
		if err := msg.Sign(s.b.SecretKey); err == nil {
			_ = s.publish(ctx, msg)
		}
		return false, nil
	case "JobResult":
		s.res.Text = m.Result
		return true, nil
	case "StreamChunk":
		s.chunks = append(s.chunks, m.Chunk)
		if m.IsFinal {
			s.res.Text = strings.Join(s.chunks, "")
			return true, nil
		}
	case "Error":
		return true, s.failed(firstNonEmpty(m.Message, "no reason given"))
	}
	return false, nil
}

// checkAndPay refuses the invoice unless it passes invoice.Check against the announced price,
// the bid, the budget and the buyer's network, and unless the amount (and hash) stated beside
// it agree with the invoice itself; then it pays once.
func (s *session) checkAndPay(ctx context.Context, bolt11, statedMsat, statedHash string) error {
	d, err := invoice.Check(bolt11, invoice.Expect{
		QuoteMsat: s.p.PriceMsat, BidMsat: s.bid, BudgetMsat: s.r.BudgetMsat, Network: s.b.Network, Now: time.Now(),
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvoiceRefused, err)
	}
	if statedMsat != "" && statedMsat != "null" {
		n, err := parseNumber(statedMsat)
		if err != nil || n != d.AmountMsat {
			return fmt.Errorf("%w: %w: stated %q msat, invoice %d msat", ErrInvoiceRefused, invoice.ErrAmountMismatch, clip(statedMsat), d.AmountMsat)
		}
	}
	if statedHash != "" && !strings.EqualFold(statedHash, d.PaymentHash) {
		return fmt.Errorf("%w: stated payment hash differs from the invoice's", ErrInvoiceRefused)
	}
	// Recorded before paying, so a failed or unknown payment can be reconciled by hash.
	s.res.PaymentHash, s.res.CostMsat = d.PaymentHash, d.AmountMsat
	if _, err := s.pay(withChecked(context.WithoutCancel(ctx), bolt11, d), bolt11, d.AmountMsat); err != nil {
		return fmt.Errorf("%w: %d msat to %s (payment hash %s): %w", ErrPayFailed, d.AmountMsat, short(s.p.Pubkey), d.PaymentHash, err)
	}
	s.paid = true
	return nil
}

// publish sends ev and succeeds when at least one relay accepted it.
func (s *session) publish(ctx context.Context, ev nostr.Event) error {
	ctx, cancel := context.WithTimeout(ctx, min(s.b.timeout(), 10*time.Second))
	defer cancel()
	var errs []error
	for r := range s.b.Pool.PublishMany(ctx, s.relaysCopy(), ev) {
		if r.Error == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", r.RelayURL, r.Error))
	}
	return fmt.Errorf("%w: %w", ErrPublish, errors.Join(errs...))
}

// relaysCopy: the pool normalizes the slice it is given in place.
func (s *session) relaysCopy() []string { return append([]string(nil), s.relays...) }

// altTag (NIP-31) describes the request to clients that do not know its kind, and its random
// suffix keeps two identical requests in one second from being one event id: relays would drop
// the second as a duplicate, and the NIP-28 job id would collide.
func altTag() nostr.Tag {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return nostr.Tag{"alt", "text generation request " + hex.EncodeToString(b[:])}
}

func hasTag(ev *nostr.Event, name, value string) bool {
	for _, t := range ev.Tags {
		if len(t) >= 2 && t[0] == name && t[1] == value {
			return true
		}
	}
	return false
}

func looksLikeBolt11(s string) bool {
	s = invoice.Normalize(s)
	return len(s) > 20 && (strings.HasPrefix(s, "lnbc") || strings.HasPrefix(s, "lntb"))
}

// findBolt11 picks the first BOLT11-looking word out of free text (feedback content).
func findBolt11(text string) string {
	for _, w := range strings.Fields(text) {
		w = strings.Trim(w, `"'.,;()[]{}<>`)
		if looksLikeBolt11(w) {
			return w
		}
	}
	return ""
}

func words(s string) int { return len(strings.Fields(s)) }

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

func clipMsg(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

type checkedKey struct{}

type checked struct {
	bolt11 string
	d      invoice.Decoded
}

func withChecked(ctx context.Context, bolt11 string, d invoice.Decoded) context.Context {
	return context.WithValue(ctx, checkedKey{}, checked{bolt11, d})
}

// CheckedInvoice returns the invoice the buyer decoded and checked before calling its Pay
// function with ctx, if bolt11 is that invoice, so the Pay function (in the same process) need
// not decode it again. The payer still decodes and validates every invoice on its own.
func CheckedInvoice(ctx context.Context, bolt11 string) (invoice.Decoded, bool) {
	c, ok := ctx.Value(checkedKey{}).(checked)
	if !ok || c.bolt11 != bolt11 {
		return invoice.Decoded{}, false
	}
	return c.d, true
}
