package model

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config of an OpenAI-compatible endpoint.
type Config struct {
	BaseURL string // e.g. https://api.openai.com/v1, http://127.0.0.1:11434/v1 (Ollama)
	Model   string // default model when a Request names none
	APIKey  string // optional (local servers need none); never logged or put in errors
	Timeout time.Duration
	// HTTPClient is optional; its Timeout is left alone, Config.Timeout bounds each call.
	HTTPClient *http.Client
}

// OpenAI is a chat-completions client.
type OpenAI struct {
	cfg      Config
	endpoint string
	hc       *http.Client
}

// DefaultTimeout bounds one completion when Config.Timeout is zero.
const DefaultTimeout = 60 * time.Second

// maxReplyBytes caps what is read from the backend, so a broken server cannot exhaust memory.
const maxReplyBytes = 4 << 20

// NewOpenAI checks the config and returns a client.
func NewOpenAI(cfg Config) (*OpenAI, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("model: BaseURL %q must be an http(s) URL", redactURL(cfg.BaseURL))
	}
	if u.User != nil {
		return nil, errors.New("model: BaseURL must not carry credentials; use APIKey")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	return &OpenAI{cfg: cfg, endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/chat/completions", hc: hc}, nil
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model     string        `json:"model"`
	Messages  []chatMessage `json:"messages"`
	MaxTokens int           `json:"max_tokens,omitempty"`
}

type chatReply struct {
	Choices []struct {
		Message *struct {
			Content *string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

type errorReply struct {
	Error json.RawMessage `json:"error"`
}

// Complete sends the prompt as one user message.
func (o *OpenAI) Complete(ctx context.Context, r Request) (Reply, error) {
	if strings.TrimSpace(r.Prompt) == "" {
		return Reply{}, ErrEmptyPrompt
	}
	m := r.Model
	if m == "" {
		m = o.cfg.Model
	}
	if m == "" {
		return Reply{}, errors.New("model: no model named in the request or the config")
	}
	body, err := json.Marshal(chatRequest{Model: m, Messages: []chatMessage{{Role: "user", Content: r.Prompt}}, MaxTokens: r.MaxTokens})
	if err != nil {
		return Reply{}, fmt.Errorf("model: encode request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.endpoint, bytes.NewReader(body))
	if err != nil {
		return Reply{}, fmt.Errorf("model: build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if o.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.cfg.APIKey)
	}
	resp, err := o.hc.Do(req)
	if err != nil {
		// net/http errors quote the URL, which carries no key (NewOpenAI refuses userinfo).
		return Reply{}, fmt.Errorf("model: POST %s: %w", o.endpoint, o.scrubErr(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		return Reply{}, fmt.Errorf("model: read reply: %w", o.scrubErr(err))
	}
	if resp.StatusCode/100 != 2 {
		return Reply{}, fmt.Errorf("%w: HTTP %d: %s", ErrUpstream, resp.StatusCode, o.scrub(upstreamMessage(raw)))
	}
	var cr chatReply
	if err := json.Unmarshal(raw, &cr); err != nil {
		return Reply{}, fmt.Errorf("%w: %v", ErrMalformedReply, err)
	}
	if len(cr.Choices) == 0 || cr.Choices[0].Message == nil || cr.Choices[0].Message.Content == nil {
		// Some servers answer 200 with {"error":...}; say what they said.
		if msg := upstreamMessage(raw); msg != "" && bytes.Contains(raw, []byte(`"error"`)) {
			return Reply{}, fmt.Errorf("%w: %s", ErrUpstream, o.scrub(msg))
		}
		return Reply{}, fmt.Errorf("%w: no choices[0].message.content", ErrMalformedReply)
	}
	rep := Reply{Text: *cr.Choices[0].Message.Content}
	if cr.Usage != nil {
		rep.TokensIn, rep.TokensOut = cr.Usage.PromptTokens, cr.Usage.CompletionTokens
	} else {
		rep.TokensIn, rep.TokensOut = words(r.Prompt), words(rep.Text)
	}
	return rep, nil
}

// upstreamMessage pulls a human message out of an error body: OpenAI's {"error":{"message"}},
// Ollama's {"error":"..."}, or the first bytes of anything else.
func upstreamMessage(raw []byte) string {
	var er errorReply
	if json.Unmarshal(raw, &er) == nil && len(er.Error) > 0 {
		var s string
		if json.Unmarshal(er.Error, &s) == nil {
			return clip(s)
		}
		var obj struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(er.Error, &obj) == nil && obj.Message != "" {
			return clip(obj.Message)
		}
	}
	return clip(strings.TrimSpace(string(raw)))
}

func clip(s string) string {
	const max = 300
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// scrub removes the API key should a backend echo it (some proxies do in auth errors).
func (o *OpenAI) scrub(s string) string {
	if o.cfg.APIKey == "" {
		return s
	}
	return strings.ReplaceAll(s, o.cfg.APIKey, "[REDACTED]")
}

func (o *OpenAI) scrubErr(err error) error {
	if o.cfg.APIKey == "" || !strings.Contains(err.Error(), o.cfg.APIKey) {
		return err
	}
	return errors.New(o.scrub(err.Error()))
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = url.User("REDACTED")
		return u.String()
	}
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
