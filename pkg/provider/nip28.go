package provider

import (
	"context"
	"encoding/json"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/model"
	"github.com/openagents/runtime/pkg/nipsa"
)

// channelMsg is the JSON content of a kind 42 in the OpenAgents channel protocol; unknown fields
// are ignored.
type channelMsg struct {
	Type           string `json:"type"`
	Kind           int    `json:"kind,omitempty"`
	Prompt         string `json:"prompt,omitempty"`
	MaxTokens      int    `json:"max_tokens,omitempty"`
	Model          string `json:"model,omitempty"`
	TargetProvider string `json:"target_provider,omitempty"`
	JobID          string `json:"job_id,omitempty"`
	PaymentID      string `json:"payment_id,omitempty"`
}

// JobID is the channel protocol's job id: "job_" + the first 16 hex of the JobRequest event id.
func JobID(requestID string) string {
	if len(requestID) < 16 {
		return "job_" + requestID
	}
	return "job_" + requestID[:16]
}

func (p *Provider) serveNIP28(ctx context.Context, ev *nostr.Event) {
	if ev.PubKey == p.pubkey {
		return
	}
	var m channelMsg
	if err := json.Unmarshal([]byte(ev.Content), &m); err != nil {
		return // chat, not protocol
	}
	switch m.Type {
	case "JobRequest":
		p.serveJobRequest(ctx, ev, m)
	case "PaymentSent":
		// Only a hint to look at the wallet now: the wallet, not this message, proves payment.
		p.mu.Lock()
		nudge := p.jobs[m.JobID]
		p.mu.Unlock()
		if nudge != nil {
			select {
			case nudge <- struct{}{}:
			default:
			}
		}
	}
}

func (p *Provider) serveJobRequest(ctx context.Context, ev *nostr.Event, m channelMsg) {
	if m.TargetProvider != "" && m.TargetProvider != p.pubkey {
		return
	}
	if m.Kind != 0 && m.Kind != nipsa.KindTextGeneration {
		return
	}
	jobID := JobID(ev.ID)
	log := p.log.With("proto", "nip28", "job_id", jobID, "customer", ev.PubKey)
	if p.cfg.Silent {
		log.Debug("silent: ignoring request")
		return
	}
	p.st.requests.Add(1)
	if m.Prompt == "" {
		p.st.refused.Add(1)
		p.sayError(ctx, ev, jobID, "empty prompt")
		return
	}
	if !p.reserve() {
		p.st.refused.Add(1)
		p.sayError(ctx, ev, jobID, "too many pending jobs, try later")
		return
	}
	defer p.release()

	ij, err := p.issue(ctx, "openagents "+jobID)
	if err != nil {
		log.Error("invoice", "err", err)
		p.sayError(ctx, ev, jobID, "could not issue an invoice")
		return
	}
	// Register before the Invoice goes out, so a fast PaymentSent finds the job.
	nudge := make(chan struct{}, 1)
	p.mu.Lock()
	p.jobs[jobID] = nudge
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.jobs, jobID)
		p.mu.Unlock()
	}()
	if err := p.say(ctx, ev.ID, ev.PubKey, map[string]any{
		"type": "Invoice", "job_id": jobID, "bolt11": ij.inv.Bolt11,
		"amount_msats": ij.amount, "payment_hash": ij.inv.PaymentHash,
	}); err != nil {
		log.Error("publish invoice", "err", err)
		return
	}
	log.Info("invoice sent", "amount_msat", ij.amount, "payment_hash", ij.inv.PaymentHash)

	if !p.waitPaid(ctx, ij, nudge) {
		if ctx.Err() == nil {
			p.st.unpaid.Add(1)
			log.Info("invoice expired unpaid", "payment_hash", ij.inv.PaymentHash)
			p.sayError(ctx, ev, jobID, "payment not received before the invoice expired")
		}
		return
	}
	p.st.paid.Add(1)
	text, ok := p.complete(ctx, log, model.Request{Prompt: m.Prompt, MaxTokens: m.MaxTokens, Model: m.Model})
	if !ok {
		p.sayError(ctx, ev, jobID, "the model failed after payment; contact the provider")
		return
	}
	p.st.delivered.Add(1) // counted first: a buyer may see the result before say returns
	if err := p.say(ctx, ev.ID, ev.PubKey, map[string]any{"type": "JobResult", "job_id": jobID, "result": text}); err != nil {
		p.st.delivered.Add(-1)
		p.st.failed.Add(1)
		log.Error("publish result", "err", err)
		return
	}
	log.Info("result delivered", "payment_hash", ij.inv.PaymentHash)
}

// sayError posts {"type":"Error","job_id","message"}. The type is this project's addition to
// the table in SPEC.md; peers ignore unknown types, and it spares buyers a timeout.
func (p *Provider) sayError(ctx context.Context, req *nostr.Event, jobID, msg string) {
	if err := p.say(ctx, req.ID, req.PubKey, map[string]any{"type": "Error", "job_id": jobID, "message": msg}); err != nil {
		p.log.Error("publish channel error", "job_id", jobID, "err", err)
	}
}

// say posts a kind 42 in the provider's channel, as a reply to replyTo when it is set.
func (p *Provider) say(ctx context.Context, replyTo, to string, content any) error {
	b, err := json.Marshal(content)
	if err != nil {
		return err
	}
	relay := p.cfg.Relays[0]
	tags := nostr.Tags{{"e", p.channel, relay, "root"}}
	if replyTo != "" {
		tags = append(tags, nostr.Tag{"e", replyTo, relay, "reply"})
	}
	if to != "" {
		tags = append(tags, nostr.Tag{"p", to})
	}
	return p.publish(ctx, &nostr.Event{Kind: nipsa.KindChannelMessage, Tags: tags, Content: string(b)})
}
