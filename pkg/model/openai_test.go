package model

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const testKey = "sk-test-SECRET-0123456789"

// chatServer answers /v1/chat/completions with handler after checking the wire format.
func chatServer(t *testing.T, handler func(w http.ResponseWriter, req chatRequest)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "wrong route "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"message":"Incorrect API key provided: `+got+`","type":"invalid_request_error"}}`)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			http.Error(w, "content type "+ct, http.StatusBadRequest)
			return
		}
		var req chatRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		handler(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestOpenAIComplete(t *testing.T) {
	var seen chatRequest
	srv := chatServer(t, func(w http.ResponseWriter, req chatRequest) {
		seen = req
		io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"llama3",
			"choices":[{"index":0,"message":{"role":"assistant","content":"four"},"finish_reason":"stop"}],
			"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}`)
	})
	m, err := NewOpenAI(Config{BaseURL: srv.URL + "/v1/", Model: "llama3", APIKey: testKey, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := m.Complete(context.Background(), Request{Prompt: "2+2?", MaxTokens: 16})
	if err != nil {
		t.Fatal(err)
	}
	if rep != (Reply{Text: "four", TokensIn: 12, TokensOut: 1}) {
		t.Fatalf("reply %+v", rep)
	}
	if seen.Model != "llama3" || seen.MaxTokens != 16 || len(seen.Messages) != 1 ||
		seen.Messages[0] != (chatMessage{Role: "user", Content: "2+2?"}) {
		t.Fatalf("request on the wire %+v", seen)
	}
	// The request's model overrides the config's.
	if _, err := m.Complete(context.Background(), Request{Prompt: "x", Model: "qwen"}); err != nil || seen.Model != "qwen" {
		t.Fatalf("model override: %v %q", err, seen.Model)
	}
}

func TestOpenAINoUsageCountsWords(t *testing.T) {
	srv := chatServer(t, func(w http.ResponseWriter, _ chatRequest) {
		io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"one two three"}}]}`)
	})
	m, _ := NewOpenAI(Config{BaseURL: srv.URL + "/v1", Model: "m", APIKey: testKey})
	rep, err := m.Complete(context.Background(), Request{Prompt: "a b"})
	if err != nil || rep.TokensIn != 2 || rep.TokensOut != 3 {
		t.Fatalf("%+v %v", rep, err)
	}
}

func TestOpenAIErrors(t *testing.T) {
	cases := []struct {
		name    string
		key     string
		handler func(w http.ResponseWriter, req chatRequest)
		want    error
		wantMsg string
	}{
		{"unauthorized echoes the key", "sk-wrong-key-XYZ", nil, ErrUpstream, "Incorrect API key"},
		{"server error", testKey, func(w http.ResponseWriter, _ chatRequest) {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"model is loading"}`) // Ollama's shape
		}, ErrUpstream, "HTTP 503: model is loading"},
		{"not json", testKey, func(w http.ResponseWriter, _ chatRequest) {
			io.WriteString(w, `<html>proxy</html>`)
		}, ErrMalformedReply, ""},
		{"no choices", testKey, func(w http.ResponseWriter, _ chatRequest) {
			io.WriteString(w, `{"choices":[]}`)
		}, ErrMalformedReply, "choices"},
		{"null content", testKey, func(w http.ResponseWriter, _ chatRequest) {
			io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":null}}]}`)
		}, ErrMalformedReply, ""},
		{"200 with an error body", testKey, func(w http.ResponseWriter, _ chatRequest) {
			io.WriteString(w, `{"error":{"message":"context length exceeded"}}`)
		}, ErrUpstream, "context length exceeded"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := c.handler
			if h == nil {
				h = func(w http.ResponseWriter, _ chatRequest) { t.Error("handler reached with a wrong key") }
			}
			srv := chatServer(t, h)
			m, err := NewOpenAI(Config{BaseURL: srv.URL + "/v1", Model: "m", APIKey: c.key, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Complete(context.Background(), Request{Prompt: "hi"})
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.wantMsg) {
				t.Fatalf("error %q lacks %q", err, c.wantMsg)
			}
			if strings.Contains(err.Error(), c.key) {
				t.Fatalf("error leaks the API key: %q", err)
			}
		})
	}
}

func TestOpenAITimeout(t *testing.T) {
	release := make(chan struct{})
	srv := chatServer(t, func(w http.ResponseWriter, _ chatRequest) { <-release })
	defer close(release)
	m, _ := NewOpenAI(Config{BaseURL: srv.URL + "/v1", Model: "m", APIKey: testKey, Timeout: 100 * time.Millisecond})
	_, err := m.Complete(context.Background(), Request{Prompt: "hi"})
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), testKey) {
		t.Fatalf("want deadline exceeded without the key, got %v", err)
	}
}

func TestOpenAIConfig(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "localhost:11434", "http://user:pw@host/v1"} {
		if _, err := NewOpenAI(Config{BaseURL: u}); err == nil {
			t.Errorf("NewOpenAI(%q) accepted", u)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	m, _ := NewOpenAI(Config{BaseURL: "http://127.0.0.1:1/v1"})
	if _, err := m.Complete(context.Background(), Request{Prompt: " "}); !errors.Is(err, ErrEmptyPrompt) {
		t.Errorf("empty prompt: %v", err)
	}
	if _, err := m.Complete(context.Background(), Request{Prompt: "x"}); err == nil || !strings.Contains(err.Error(), "no model") {
		t.Errorf("no model: %v", err)
	}
}
