// Package lnd is a lightning.Wallet over LND's REST API. It speaks plain net/http and
// encoding/json (no gRPC, no lnrpc import), pins the node's TLS certificate and authenticates
// with a macaroon, which it never logs.
package lnd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/btcsuite/btcd/chaincfg"

	"github.com/openagents/runtime/pkg/lightning"
)

// Config says how to reach one LND node.
type Config struct {
	// URL of the REST listener, e.g. https://127.0.0.1:8080.
	URL string
	// MacaroonPath or MacaroonHex: the macaroon to send. An invoice+offchain-read macaroon is
	// enough for invoices and lookups; paying needs offchain write.
	MacaroonPath string
	MacaroonHex  string
	// TLSCertPath is the node's tls.cert. When set, it is the only certificate accepted (pinned,
	// whatever the host name); when empty, the system roots verify the server (a TLS proxy).
	TLSCertPath string
	// Network: mainnet, testnet, signet or regtest. Invoices for another network are refused
	// before they reach the node.
	Network string
	// PayTimeout bounds a payment attempt inside lnd (timeout_seconds). Default 60 s.
	PayTimeout time.Duration
	// FeeLimitSat caps routing fees a payment. Default 10 sat + 1% of the amount.
	FeeLimitSat int64
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Wallet is a lightning.Wallet backed by one LND node. Safe for concurrent use.
type Wallet struct {
	base       *url.URL
	macaroon   string // hex; never logged
	network    string
	params     *chaincfg.Params
	payTimeout time.Duration
	feeLimit   int64
	hc         *http.Client
	log        *slog.Logger
	hub        settleHub
}

var _ lightning.Wallet = (*Wallet)(nil)

// ErrPaymentFailed is wrapped by every error PayInvoice returns for a payment lnd reports as
// finally failed; the mapped lightning error (ErrNoRoute, ErrInsufficientBalance...) is wrapped
// too when there is one. Such a payment is final: nothing moved.
var ErrPaymentFailed = errors.New("lnd: payment failed")

// New checks cfg and builds the client. It does no I/O beyond reading the macaroon and cert.
func New(cfg Config) (*Wallet, error) {
	base, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || base.Host == "" || (base.Scheme != "https" && base.Scheme != "http") {
		return nil, fmt.Errorf("lnd: URL %q: want https://host:port", cfg.URL)
	}
	params, err := netParams(cfg.Network)
	if err != nil {
		return nil, err
	}
	mac := strings.TrimSpace(cfg.MacaroonHex)
	if mac == "" && cfg.MacaroonPath != "" {
		raw, err := os.ReadFile(cfg.MacaroonPath)
		if err != nil {
			return nil, fmt.Errorf("lnd: read macaroon: %w", err)
		}
		mac = hex.EncodeToString(raw)
	}
	if mac == "" {
		return nil, errors.New("lnd: a macaroon is required (MacaroonPath or MacaroonHex)")
	}
	if _, err := hex.DecodeString(mac); err != nil {
		return nil, errors.New("lnd: MacaroonHex is not hex")
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSCertPath != "" {
		tlsConf, err = PinnedTLS(cfg.TLSCertPath)
		if err != nil {
			return nil, err
		}
	}
	w := &Wallet{
		base:       base,
		macaroon:   mac,
		network:    cfg.Network,
		params:     params,
		payTimeout: cfg.PayTimeout,
		feeLimit:   cfg.FeeLimitSat,
		log:        cfg.Logger,
		hc: &http.Client{Transport: &http.Transport{
			TLSClientConfig:     tlsConf,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		}},
	}
	if w.payTimeout <= 0 {
		w.payTimeout = 60 * time.Second
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	return w, nil
}

func netParams(network string) (*chaincfg.Params, error) {
	switch network {
	case "mainnet":
		return &chaincfg.MainNetParams, nil
	case "testnet":
		return &chaincfg.TestNet3Params, nil
	case "signet":
		return &chaincfg.SigNetParams, nil
	case "regtest":
		return &chaincfg.RegressionNetParams, nil
	}
	return nil, fmt.Errorf("lnd: network %q: want mainnet, testnet, signet or regtest", network)
}

// PinnedTLS accepts exactly the certificate in path. lnd's self-signed certificate names
// localhost and the node's own IPs, so verifying host names would break behind any other
// name; comparing the whole certificate is stricter than a CA check and independent of names.
func PinnedTLS(path string) (*tls.Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lnd: read TLS cert: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("lnd: TLS cert %s: no PEM block", path)
	}
	pinned, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("lnd: TLS cert %s: %w", path, err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is not skipped: VerifyConnection below replaces it with the pin.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, pinned.Raw) {
				return errors.New("lnd: server certificate does not match the pinned tls.cert")
			}
			return nil
		},
	}, nil
}

// Network is the BOLT11 network this wallet pays on.
func (w *Wallet) Network() string { return w.network }

// Balance is the local balance of the node's channels in msat (/v1/balance/channels).
func (w *Wallet) Balance(ctx context.Context) (int64, error) {
	var out struct {
		LocalBalance struct {
			Msat jsonInt `json:"msat"`
		} `json:"local_balance"`
	}
	if err := w.call(ctx, http.MethodGet, "/v1/balance/channels", nil, &out); err != nil {
		return 0, err
	}
	return int64(out.LocalBalance.Msat), nil
}

// request builds a request carrying the macaroon. body, when not nil, is sent as JSON.
func (w *Wallet) request(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.base.String()+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Grpc-Metadata-macaroon", w.macaroon)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// call does one unary request and decodes the reply into out.
func (w *Wallet) call(ctx context.Context, method, path string, in, out any) error {
	req, err := w.request(ctx, method, path, in)
	if err != nil {
		return err
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		return fmt.Errorf("lnd: %s %s: %w", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return fmt.Errorf("lnd: %s %s: read: %w", method, req.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return parseError(resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("lnd: %s %s: decode: %w", method, req.URL.Path, err)
	}
	return nil
}

// maxReply bounds a unary reply; lnd's largest ones we read are a few KB.
const maxReply = 4 << 20
