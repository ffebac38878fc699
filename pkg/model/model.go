// Package model holds the language-model backends a compute provider runs: an OpenAI-compatible
// chat-completions client (OpenAI, Ollama, llama.cpp server, vLLM) and a deterministic built-in
// model for the offline demo and tests.
package model

import (
	"context"
	"errors"
	"strings"
)

// Request is one completion request.
type Request struct {
	Prompt    string
	MaxTokens int    // 0: the backend's default
	Model     string // "": the backend's configured model
}

// Reply is a completion.
type Reply struct {
	Text      string
	TokensIn  int
	TokensOut int
}

// Model completes prompts. Implementations must be safe for concurrent use.
type Model interface {
	Complete(ctx context.Context, r Request) (Reply, error)
}

// Errors callers branch on.
var (
	ErrEmptyPrompt = errors.New("model: empty prompt")
	// ErrUpstream: the backend answered with an error status.
	ErrUpstream = errors.New("model: backend error")
	// ErrMalformedReply: the backend answered 2xx with something that is not a completion.
	ErrMalformedReply = errors.New("model: malformed reply")
)

// words is a rough token count: good enough for accounting where the backend reports none.
func words(s string) int { return len(strings.Fields(s)) }
