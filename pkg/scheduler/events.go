package scheduler

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/invoice"
)

// Event kinds the scheduler listens for.
const (
	kindNote        = 1
	kindDM          = 4
	kindGiftWrap    = 1059
	kindChannelMsg  = 42
	kindZapRequest  = 9734
	kindZapReceipt  = 9735
	channelTrigger  = contracts.TriggerChannel // custom:42
	customTriggerPf = "custom:"
)

// ErrInvalidZap wraps every reason a zap receipt is refused.
var ErrInvalidZap = errors.New("scheduler: invalid zap receipt")

// triggerType is the trigger an event of kind k raises for an agent it tags.
func triggerType(kind int) string {
	switch kind {
	case kindNote:
		return contracts.TriggerMention
	case kindDM, kindGiftWrap:
		return contracts.TriggerDM
	case kindZapReceipt:
		return contracts.TriggerZap
	}
	return customTriggerPf + strconv.Itoa(kind)
}

// kindsFor are the kinds a trigger needs subscribed by #p; custom:42 is subscribed by #e on
// the agent's channels instead, so it is not here.
func kindsFor(trigger string) []int {
	switch trigger {
	case contracts.TriggerMention:
		return []int{kindNote}
	case contracts.TriggerDM:
		return []int{kindDM, kindGiftWrap}
	case contracts.TriggerZap:
		return []int{kindZapReceipt}
	case channelTrigger:
		return nil
	}
	if rest, ok := strings.CutPrefix(trigger, customTriggerPf); ok {
		if k, err := strconv.Atoi(rest); err == nil && k >= 0 && k <= 65535 {
			return []int{k}
		}
	}
	return nil
}

// ValidateZap checks a kind 9735 receipt for agent as NIP-57 appendix F asks, as far as the
// scheduler can: a bolt11 that decodes (signature included); a description holding a signed
// kind 9734 zap request with exactly one p tag, equal to agent; the request's amount tag equal
// to the invoice amount; and, when the invoice commits to a description hash, that hash
// matching the description. (The receipt's signer should be the recipient's LNURL server key;
// the registry does not record that key, so it is not checked here.)
func ValidateZap(receipt *nostr.Event, agent string) error {
	if receipt.Kind != kindZapReceipt {
		return fmt.Errorf("%w: kind %d", ErrInvalidZap, receipt.Kind)
	}
	bolt11 := tagValue(receipt.Tags, "bolt11")
	if bolt11 == "" {
		return fmt.Errorf("%w: no bolt11 tag", ErrInvalidZap)
	}
	desc := tagValue(receipt.Tags, "description")
	if desc == "" {
		return fmt.Errorf("%w: no description tag", ErrInvalidZap)
	}
	inv, err := invoice.Decode(bolt11)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidZap, err)
	}
	if inv.AmountMsat <= 0 {
		return fmt.Errorf("%w: invoice has no amount", ErrInvalidZap)
	}
	if inv.DescriptionHash != "" {
		h := sha256.Sum256([]byte(desc))
		if hex.EncodeToString(h[:]) != inv.DescriptionHash {
			return fmt.Errorf("%w: description hash does not match the invoice", ErrInvalidZap)
		}
	}
	var req nostr.Event
	if err := json.Unmarshal([]byte(desc), &req); err != nil {
		return fmt.Errorf("%w: description is not an event: %v", ErrInvalidZap, err)
	}
	if req.Kind != kindZapRequest {
		return fmt.Errorf("%w: description is kind %d, want 9734", ErrInvalidZap, req.Kind)
	}
	if ok, _ := req.CheckSignature(); !ok {
		return fmt.Errorf("%w: zap request signature", ErrInvalidZap)
	}
	var ps []string
	for _, t := range req.Tags {
		if len(t) >= 2 && t[0] == "p" {
			ps = append(ps, t[1])
		}
	}
	if len(ps) != 1 || !strings.EqualFold(ps[0], agent) {
		return fmt.Errorf("%w: zap request must have exactly one p tag, the agent (has %d)", ErrInvalidZap, len(ps))
	}
	amount := tagValue(req.Tags, "amount")
	msat, err := strconv.ParseInt(amount, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: zap request amount %q", ErrInvalidZap, amount)
	}
	if msat != inv.AmountMsat {
		return fmt.Errorf("%w: zap request asks %d msat, invoice is for %d", ErrInvalidZap, msat, inv.AmountMsat)
	}
	return nil
}

func tagValue(tags nostr.Tags, name string) string {
	for _, t := range tags {
		if len(t) >= 2 && t[0] == name {
			return t[1]
		}
	}
	return ""
}

// tagValues returns the distinct values of the tags named name.
func tagValues(tags nostr.Tags, name string) []string {
	var out []string
	for _, t := range tags {
		if len(t) >= 2 && t[0] == name && !contains(out, t[1]) {
			out = append(out, t[1])
		}
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
