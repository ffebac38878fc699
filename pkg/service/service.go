// Package service is the common shell of the four services: flags and env for NATS, an HTTP
// server with /healthz, /readyz and /metrics, structured logs, and a clean stop on SIGTERM.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Shell is what a service's body gets: its logger, metrics registry and a readiness switch.
type Shell struct {
	Name     string
	Log      *slog.Logger
	Registry *prometheus.Registry
	ready    atomic.Bool
	// HTTPAddr is where /healthz, /readyz and /metrics listen once Run has started.
	HTTPAddr string
}

// SetReady flips /readyz (a Kubernetes readiness probe: connected to NATS and relays).
func (s *Shell) SetReady(ok bool) { s.ready.Store(ok) }

// NewShell builds a shell with a fresh registry holding Go and process collectors.
func NewShell(name string, log *slog.Logger) *Shell {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if log == nil {
		log = slog.Default()
	}
	return &Shell{Name: name, Log: log.With("service", name), Registry: reg}
}

// Handler serves /healthz, /readyz and /metrics.
func (s *Shell) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{Registry: s.Registry}))
	return mux
}

// Serve listens on addr and serves Handler until ctx ends.
func (s *Shell) Serve(ctx context.Context, addr string) (net.Addr, <-chan error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: listen %s: %w", s.Name, addr, err)
	}
	s.HTTPAddr = ln.Addr().String()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr(), done, nil
}

// Logger returns the project's JSON logger on stderr at the level in OPENAGENTS_LOG_LEVEL.
func Logger() *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(os.Getenv("OPENAGENTS_LOG_LEVEL")))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// Common flags shared by every service main.
type Flags struct {
	NATSURL    string
	NATSCreds  string
	HTTPAddr   string
	Relays     stringList
	JSReplicas int
}

type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// Register adds the common flags to fs, with defaults from the environment.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.NATSURL, "nats", EnvOr("NATS_URL", "nats://127.0.0.1:4222"), "NATS server URL (env NATS_URL)")
	fs.StringVar(&f.NATSCreds, "nats-creds", os.Getenv("NATS_CREDS"), "NATS credentials file (env NATS_CREDS)")
	fs.StringVar(&f.HTTPAddr, "http", EnvOr("HTTP_ADDR", ":8080"), "address for /healthz, /readyz and /metrics (env HTTP_ADDR)")
	fs.Var(&f.Relays, "relay", "relay URL, repeatable (env RELAYS, comma-separated)")
	fs.IntVar(&f.JSReplicas, "js-replicas", envInt("OPENAGENTS_JS_REPLICAS", 1), "replicas of the streams and buckets it provisions: 1, or 3 in a cluster (env OPENAGENTS_JS_REPLICAS)")
}

func envInt(k string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(k), &n); err == nil && n > 0 {
		return n
	}
	return def
}

// EnvOr is the environment variable k, or def when it is unset or empty.
func EnvOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Main runs body with a context cancelled on SIGTERM or SIGINT, serving the shell's HTTP
// endpoints meanwhile, and returns the process exit code.
func Main(name, httpAddr string, body func(ctx context.Context, sh *Shell) error) int {
	sh := NewShell(name, Logger())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	addr, httpDone, err := sh.Serve(ctx, httpAddr)
	if err != nil {
		sh.Log.Error("start", "err", err)
		return 1
	}
	sh.Log.Info("listening", "http", addr.String())
	err = body(ctx, sh)
	stop()
	if herr := <-httpDone; herr != nil && err == nil {
		err = herr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		sh.Log.Error("stopped", "err", err)
		return 1
	}
	sh.Log.Info("stopped cleanly")
	return 0
}
