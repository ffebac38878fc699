package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// `openagents devnet --llm-url` puts an OpenAI-compatible endpoint behind the reference
// provider: the agents' prompts reach it and its answers become their actions.
func TestDevnetWithOpenAICompatibleModel(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model    string `json:"model"`
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
		}
		if r.URL.Path != "/chat/completions" || json.NewDecoder(r.Body).Decode(&req) != nil || len(req.Messages) == 0 ||
			!strings.Contains(req.Messages[len(req.Messages)-1].Content, "## Agent") || req.Model != "tiny" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		calls.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": "POST: hello from a real model endpoint"}}},
			"usage":   map[string]any{"prompt_tokens": 12, "completion_tokens": 7},
		})
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	code := run([]string{"devnet", "--for", "8s", "--json", "--nats-port", "0", "--relay-port", "0", "--http-port", "0",
		"--heartbeat", "2", "--llm-url", srv.URL, "--llm-model", "tiny"}, strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var sum devnetSummary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, out.String())
	}
	if calls.Load() == 0 || sum.Totals["ticks"] == 0 {
		t.Fatalf("model calls %d, ticks %d", calls.Load(), sum.Totals["ticks"])
	}
	posted := false
	for _, a := range sum.Agents {
		if strings.Contains(a.LastAction, "post") {
			posted = true
		}
	}
	if !posted {
		t.Fatalf("no agent acted on the model's answer: %+v", sum.Agents)
	}
}
