package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/custody"
	"github.com/openagents/runtime/pkg/fleet"
	"github.com/openagents/runtime/pkg/natsx"
)

// connFlags are the flags every command that talks to a fleet takes.
type connFlags struct {
	natsURL string
	creds   string
	kekFile string
	json    bool
	notice  io.Writer // where the local home says it shares another process's server
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.natsURL, "nats", os.Getenv("NATS_URL"), "NATS server URL (env NATS_URL; default: the nats CLI's selected context, else the local home)")
	fs.StringVar(&c.creds, "creds", os.Getenv("NATS_CREDS"), "NATS credentials file (env NATS_CREDS)")
	fs.StringVar(&c.kekFile, "kek-file", os.Getenv("OPENAGENTS_KEK_FILE"), "key-encryption key file (env OPENAGENTS_KEK_FILE; default: the local home's)")
	fs.BoolVar(&c.json, "json", false, "machine-readable output")
	c.notice = fs.Output()
}

// session is an open connection to a fleet.
type session struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	fleet *fleet.Fleet
	home  *home // nil unless the local home is used
}

func (s *session) Close() {
	if s.nc != nil {
		s.nc.Close()
	}
	if s.home != nil {
		s.home.Close()
	}
}

// open connects to NATS (flag, env, nats context, or the local home) and opens the fleet; the
// vault is opened only when a KEK is at hand (or needVault demands one).
func (c *connFlags) open(ctx context.Context, needVault bool) (*session, error) {
	s := &session{}
	url := c.natsURL
	if url == "" {
		url = natsContextURL()
	}
	var kekFile = c.kekFile
	if url == "" {
		h, err := openHome(c.notice)
		if err != nil {
			return nil, err
		}
		s.home = h
		url = h.url
		if kekFile == "" {
			kekFile = h.kekFile
		}
	}
	nc, js, err := natsx.ConnectAndProvision(ctx, natsx.ConnectOptions{URL: url, Name: "openagents-cli", Creds: c.creds,
		User: os.Getenv("NATS_USER"), Password: os.Getenv("NATS_PASSWORD")}, contracts.ProvisionOptions{})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("NATS unreachable at %s: %w", url, unwrapAll(err))
	}
	s.nc, s.js = nc, js
	var vault *custody.Vault
	if kekFile != "" {
		kek, err := custody.LoadKEK(kekFile)
		if err != nil {
			s.Close()
			return nil, err
		}
		if vault, err = custody.OpenVault(ctx, js, kek); err != nil {
			s.Close()
			return nil, err
		}
	} else if needVault {
		s.Close()
		return nil, fleet.ErrNoVault
	}
	if s.fleet, err = fleet.Open(ctx, nc, js, vault); err != nil {
		s.Close()
		return nil, err
	}
	if rel := os.Getenv("OPENAGENTS_RELAYS"); rel != "" {
		s.fleet.Relays = strings.Split(rel, ",")
	}
	return s, nil
}

func unwrapAll(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// natsContextURL reads the nats CLI's selected context, so `nats context select` applies here.
func natsContextURL() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		hd, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(hd, ".config")
	}
	name, err := os.ReadFile(filepath.Join(dir, "nats", "context.txt"))
	if err != nil || strings.TrimSpace(string(name)) == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dir, "nats", "context", strings.TrimSpace(string(name))+".json"))
	if err != nil {
		return ""
	}
	var ctxFile struct {
		URL string `json:"url"`
	}
	if json.Unmarshal(b, &ctxFile) != nil {
		return ""
	}
	return ctxFile.URL
}

// home is the CLI's local home: an embedded NATS whose JetStream store lives in the user's
// config directory, so a single machine needs no server. The first process holds a lock and
// serves; a second process on the same home connects to the first's server.
type home struct {
	dir     string
	url     string
	kekFile string
	lock    *os.File
	server  *natsx.Embedded
}

func homeDir() (string, error) {
	if d := os.Getenv("OPENAGENTS_HOME"); d != "" {
		return d, nil
	}
	hd, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(hd, ".openagents"), nil
}

// ErrHomeBusy: another process holds the home and its server cannot be reached.
var ErrHomeBusy = errors.New("local home busy")

func openHome(notice io.Writer) (*home, error) {
	if notice == nil {
		notice = os.Stderr
	}
	dir, err := homeDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	h := &home{dir: dir, kekFile: filepath.Join(dir, "kek")}
	if err := ensureKEK(h.kekFile); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		// Another openagents process owns the home: share its server instead of opening the
		// same JetStream store twice (which would corrupt it).
		b, _ := os.ReadFile(filepath.Join(dir, "server.json"))
		var info struct {
			PID int    `json:"pid"`
			URL string `json:"url"`
		}
		_ = json.Unmarshal(b, &info)
		if info.URL == "" {
			return nil, fmt.Errorf("%w: %s is locked by another openagents process that serves no NATS yet", ErrHomeBusy, dir)
		}
		fmt.Fprintf(notice, "openagents: home %s is in use by process %d; using its NATS server at %s\n", dir, info.PID, info.URL)
		h.url = info.URL
		return h, nil
	}
	h.lock = f
	srv, err := natsx.StartEmbedded(natsx.EmbeddedOptions{Dir: filepath.Join(dir, "jetstream")})
	if err != nil {
		h.Close()
		return nil, err
	}
	h.server, h.url = srv, srv.URL()
	b, _ := json.Marshal(map[string]any{"pid": os.Getpid(), "url": h.url})
	if err := os.WriteFile(filepath.Join(dir, "server.json"), b, 0o600); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

func (h *home) Close() {
	if h.server != nil {
		h.server.Close()
		_ = os.Remove(filepath.Join(h.dir, "server.json"))
	}
	if h.lock != nil {
		_ = h.lock.Close()
	}
}

func ensureKEK(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	_, hexKey := custody.NewKEK()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(hexKey + "\n")
	return err
}
