// Package compute is the buyer side of the compute market: it discovers providers from their
// NIP-89 announcements (kind 31990) and buys text generation from them over NIP-90 or the
// OpenAgents NIP-28 channel protocol, checking every invoice before paying it
// (SPEC.md "Buying compute").
package compute

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/nipsa"
)

// Provider is a compute provider as its announcement describes it.
type Provider struct {
	Pubkey    string
	Name      string
	PriceMsat int64 // per request
	Network   string
	Models    []string
	Channel   string   // NIP-28 channel id; "" when none
	Relays    []string // where the provider listens; may be empty
	NIP90     bool     // speaks NIP-90 kind 5050
	NIP28     bool     // speaks the OpenAgents channel protocol in Channel
}

// Parse errors.
var (
	ErrNotHandler = errors.New("compute: not a NIP-89 handler for kind 5050")
	ErrUnpriced   = errors.New("compute: handler states no usable price")
)

// ParseHandler reads a kind 31990 leniently: the price comes from the
// ["price",<amount>,"per-request",<unit>] tag, else from "amount" (or "price_msats") in the
// JSON content, as other providers write it. A handler that cannot be priced per request is
// refused with ErrUnpriced: a buyer cannot check an invoice against an unknown quote.
func ParseHandler(ev *nostr.Event) (Provider, error) {
	if ev == nil || ev.Kind != nipsa.KindHandlerInfo {
		return Provider{}, fmt.Errorf("%w: want kind %d", ErrNotHandler, nipsa.KindHandlerInfo)
	}
	if !nostr.IsValid32ByteHex(ev.PubKey) {
		return Provider{}, fmt.Errorf("%w: bad pubkey", ErrNotHandler)
	}
	p := Provider{Pubkey: ev.PubKey}
	var content struct {
		Name        string          `json:"name"`
		DisplayName string          `json:"display_name"`
		Amount      json.RawMessage `json:"amount"`
		PriceMsats  json.RawMessage `json:"price_msats"`
	}
	contentOK := json.Unmarshal([]byte(ev.Content), &content) == nil
	p.Name = strings.TrimSpace(content.Name)
	if p.Name == "" {
		p.Name = strings.TrimSpace(content.DisplayName)
	}

	var priceErr error
	priced := false
	for _, t := range ev.Tags {
		if len(t) < 2 {
			continue
		}
		switch t[0] {
		case "k":
			if t[1] == strconv.Itoa(nipsa.KindTextGeneration) {
				p.NIP90 = true
			}
		case "price":
			if priced {
				continue
			}
			msat, err := parsePriceTag(t)
			if err != nil {
				priceErr = err
				continue
			}
			p.PriceMsat, priced = msat, true
		case "network":
			if p.Network == "" {
				p.Network = strings.ToLower(strings.TrimSpace(t[1]))
			}
		case "model":
			if m := strings.TrimSpace(t[1]); m != "" && len(p.Models) < 32 {
				p.Models = append(p.Models, m)
			}
		case "channel":
			if p.Channel == "" && nostr.IsValid32ByteHex(t[1]) {
				p.Channel = t[1]
			}
		case "relay":
			if u := strings.TrimSpace(t[1]); (strings.HasPrefix(u, "wss://") || strings.HasPrefix(u, "ws://")) && len(p.Relays) < 16 {
				p.Relays = append(p.Relays, u)
			}
		}
	}
	if !p.NIP90 {
		return Provider{}, fmt.Errorf("%w: no [\"k\",\"5050\"] tag", ErrNotHandler)
	}
	if !priced && contentOK {
		for _, raw := range []json.RawMessage{content.Amount, content.PriceMsats} {
			if len(raw) == 0 {
				continue
			}
			msat, err := parseAmount(raw)
			if err != nil {
				priceErr = err
				continue
			}
			p.PriceMsat, priced = msat, true
			break
		}
	}
	if !priced {
		if priceErr != nil {
			return Provider{}, fmt.Errorf("%w: %w", ErrUnpriced, priceErr)
		}
		return Provider{}, fmt.Errorf("%w: no price tag and no amount in the content", ErrUnpriced)
	}
	p.NIP28 = p.Channel != ""
	if p.Name == "" {
		if d := ev.Tags.GetD(); d != "" {
			p.Name = d
		} else {
			p.Name = ev.PubKey[:16]
		}
	}
	return p, nil
}

// parsePriceTag reads ["price", amount, model?, unit?]. The pricing model must be per request
// (or absent); the unit defaults to msats, and sats are converted.
func parsePriceTag(t nostr.Tag) (int64, error) {
	amount, per, unit := t[1], "", "msats"
	if len(t) >= 3 {
		per = strings.ToLower(strings.TrimSpace(t[2]))
	}
	if len(t) >= 4 && strings.TrimSpace(t[3]) != "" {
		unit = strings.ToLower(strings.TrimSpace(t[3]))
	}
	if per != "" && per != "per-request" && per != "per_request" && per != "request" {
		return 0, fmt.Errorf("price is %q, not per request", clip(per))
	}
	n, err := parseNumber(amount)
	if err != nil {
		return 0, err
	}
	return toMsat(n, unit)
}

func parseAmount(raw json.RawMessage) (int64, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		n, err := parseNumber(s)
		if err != nil {
			return 0, err
		}
		return toMsat(n, "msats")
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, fmt.Errorf("amount %s is not a number", clip(string(raw)))
	}
	if f != math.Trunc(f) || f > math.MaxInt64/2 || f < math.MinInt64/2 {
		return 0, fmt.Errorf("amount %v is not a whole number of msats", f)
	}
	return toMsat(int64(f), "msats")
}

// parseNumber accepts "1000", "100_000" and "1,000" as written in the wild.
func parseNumber(s string) (int64, error) {
	c := strings.NewReplacer("_", "", ",", "").Replace(strings.TrimSpace(s))
	n, err := strconv.ParseInt(c, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("price %q is not a whole number", clip(s))
	}
	return n, nil
}

func toMsat(n int64, unit string) (int64, error) {
	if n <= 0 {
		return 0, fmt.Errorf("price %d must be positive", n)
	}
	switch unit {
	case "msats", "msat", "millisats":
		return n, nil
	case "sats", "sat":
		if n > math.MaxInt64/1000 {
			return 0, fmt.Errorf("price %d sats overflows", n)
		}
		return n * 1000, nil
	}
	return 0, fmt.Errorf("price unit %q unknown (want msats or sats)", clip(unit))
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
