package provider

import (
	"context"
	"log/slog"
	"strconv"
	"strings"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/model"
	"github.com/openagents/runtime/pkg/nipsa"
)

// Feedback statuses of NIP-90 kind 7000.
const (
	StatusPaymentRequired = "payment-required"
	StatusProcessing      = "processing"
	StatusError           = "error"
	StatusSuccess         = "success"
)

// jobRequest is what the provider reads from a kind 5050.
type jobRequest struct {
	prompt    string
	model     string
	maxTokens int
	bidMsat   int64
}

// parseJob reads a 5050 leniently (most requests in the wild carry only i and relays) and
// returns a reason for the buyer when it cannot be served.
func parseJob(ev *nostr.Event) (jobRequest, string) {
	var j jobRequest
	for _, t := range ev.Tags {
		if len(t) >= 1 && t[0] == "encrypted" { // NIP-90 writes it without a value
			return j, "encrypted requests are not supported"
		}
		if len(t) < 2 {
			continue
		}
		switch t[0] {
		case "i":
			if j.prompt != "" {
				continue
			}
			if len(t) >= 3 && t[2] != "" && t[2] != "text" {
				return j, "only text input is supported, got " + clip(t[2], 20)
			}
			j.prompt = t[1]
		case "param":
			if len(t) < 3 {
				continue
			}
			switch t[1] {
			case "model":
				j.model = t[2]
			case "max_tokens":
				if n, err := strconv.Atoi(t[2]); err == nil && n > 0 {
					j.maxTokens = n
				}
			}
		case "bid":
			n, err := strconv.ParseInt(strings.TrimSpace(t[1]), 10, 64)
			if err != nil || n < 0 {
				return j, "bid must be a whole number of msats"
			}
			j.bidMsat = n
		}
	}
	if strings.TrimSpace(j.prompt) == "" {
		return j, "no text input (i tag)"
	}
	return j, ""
}

// addressedToOthers: a request with p tags is for those providers only.
func (p *Provider) addressedToOthers(ev *nostr.Event) bool {
	ps := 0
	for _, t := range ev.Tags {
		if len(t) >= 2 && t[0] == "p" {
			if t[1] == p.pubkey {
				return false
			}
			ps++
		}
	}
	return ps > 0
}

func (p *Provider) serveNIP90(ctx context.Context, ev *nostr.Event) {
	if ev.PubKey == p.pubkey || p.addressedToOthers(ev) {
		return
	}
	log := p.log.With("proto", "nip90", "request", ev.ID, "customer", ev.PubKey)
	if p.cfg.Silent {
		log.Debug("silent: ignoring request")
		return
	}
	p.st.requests.Add(1)
	job, reason := parseJob(ev)
	if reason == "" && job.bidMsat > 0 && job.bidMsat < p.cfg.PriceMsat {
		reason = "bid below price"
	}
	if reason != "" {
		p.st.refused.Add(1)
		log.Info("request refused", "reason", reason, "bid_msat", job.bidMsat)
		p.feedback(ctx, ev, StatusError, reason, nil)
		return
	}
	if !p.reserve() {
		p.st.refused.Add(1)
		p.feedback(ctx, ev, StatusError, "too many pending jobs, try later", nil)
		return
	}
	defer p.release()

	ij, err := p.issue(ctx, "openagents job "+ev.ID[:16])
	if err != nil {
		log.Error("invoice", "err", err)
		p.feedback(ctx, ev, StatusError, "could not issue an invoice", nil)
		return
	}
	amount := strconv.FormatInt(ij.amount, 10)
	if err := p.feedback(ctx, ev, StatusPaymentRequired, "", nostr.Tag{"amount", amount, ij.inv.Bolt11}); err != nil {
		return
	}
	log.Info("invoice sent", "amount_msat", ij.amount, "payment_hash", ij.inv.PaymentHash)

	if !p.waitPaid(ctx, ij, nil) {
		if ctx.Err() == nil {
			p.st.unpaid.Add(1)
			log.Info("invoice expired unpaid", "payment_hash", ij.inv.PaymentHash)
			p.feedback(ctx, ev, StatusError, "payment not received before the invoice expired", nil)
		}
		return
	}
	p.st.paid.Add(1)
	p.feedback(ctx, ev, StatusProcessing, "", nil)

	text, ok := p.complete(ctx, log, model.Request{Prompt: job.prompt, MaxTokens: job.maxTokens, Model: job.model})
	if !ok {
		p.feedback(ctx, ev, StatusError, "the model failed after payment; contact the provider", nil)
		return
	}
	res := &nostr.Event{
		Kind: nipsa.KindTextGenResult,
		Tags: nostr.Tags{
			{"e", ev.ID, p.cfg.Relays[0]},
			{"p", ev.PubKey},
			{"request", ev.String()},
			{"amount", amount, ij.inv.Bolt11},
		},
		Content: text,
	}
	p.st.delivered.Add(1) // counted first: a buyer may see the result before publish returns
	if err := p.publish(ctx, res); err != nil {
		p.st.delivered.Add(-1)
		p.st.failed.Add(1)
		log.Error("publish result", "err", err)
		return
	}
	log.Info("result delivered", "payment_hash", ij.inv.PaymentHash)
}

// complete runs the model with the concurrency cap. The request's model name is advisory: the
// provider serves what it announced.
func (p *Provider) complete(ctx context.Context, log *slog.Logger, r model.Request) (string, bool) {
	if r.Model == "" {
		r.Model = p.cfg.ModelName
	}
	select {
	case p.running <- struct{}{}:
	case <-ctx.Done():
		return "", false
	}
	rep, err := p.cfg.Model.Complete(ctx, r)
	<-p.running
	if err != nil {
		p.st.failed.Add(1)
		log.Error("model", "err", err)
		return "", false
	}
	return rep.Text, true
}

// feedback publishes a kind 7000 about request ev.
func (p *Provider) feedback(ctx context.Context, ev *nostr.Event, status, extra string, amount nostr.Tag) error {
	tags := nostr.Tags{{"status", status, extra}, {"e", ev.ID, p.cfg.Relays[0]}, {"p", ev.PubKey}}
	if amount != nil {
		tags = append(tags, amount)
	}
	err := p.publish(ctx, &nostr.Event{Kind: nipsa.KindJobFeedback, Tags: tags})
	if err != nil {
		p.log.Error("publish feedback", "status", status, "request", ev.ID, "err", err)
	}
	return err
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
