// Package regtest starts a real Lightning network on this machine for tests: btcd in regtest
// mode and two lnd nodes, alice (funded, 500 blocks of coinbase) and bob, with one channel
// alice->bob that can route a payment when Start returns. Everything listens on 127.0.0.1 on
// free ports and lives under Options.Dir. The binaries come from scripts/deps.d/30-regtest.sh.
package regtest

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Versions of the binaries this package drives; the cache directory is named for them.
const (
	LndVersion  = "v0.19.3-beta"
	BtcdVersion = "v0.24.2"
	// ChannelSat is the capacity of the alice->bob channel, all of it on alice's side.
	ChannelSat = 10_000_000
	// BuildScript builds the binaries into BinDir().
	BuildScript = "scripts/deps.d/30-regtest.sh"
)

// ErrBinariesMissing: btcd or lnd is not in the bin directory. Run BuildScript.
var ErrBinariesMissing = errors.New("regtest: btcd/lnd binaries missing; run " + BuildScript)

// BinDir is where the binaries are: $OPENAGENTS_REGTEST_BIN, or the versioned cache
// ~/.cache/openagents/regtest/lnd-<v>_btcd-<v>/bin that BuildScript fills.
func BinDir() string {
	if d := os.Getenv("OPENAGENTS_REGTEST_BIN"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "openagents", "regtest",
		"lnd-"+LndVersion+"_btcd-"+BtcdVersion, "bin")
}

// CheckBinaries returns ErrBinariesMissing (wrapped, naming the file) unless btcd and lnd are
// executable in dir.
func CheckBinaries(dir string) error {
	for _, name := range []string{"btcd", "lnd"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%w (no executable %s)", ErrBinariesMissing, filepath.Join(dir, name))
		}
	}
	return nil
}

// Options for Start.
type Options struct {
	// Dir holds every data directory and log; required (a test's t.TempDir()).
	Dir string
	// BinDir holds btcd and lnd; default BinDir().
	BinDir string
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Network is a running regtest network. Stop it when done.
type Network struct {
	Alice, Bob *Node
	Dir        string

	btcd     *btcd
	log      *slog.Logger
	stopOnce sync.Once
	stopErr  error
}

// Start brings the network up: btcd mining to alice, 500 blocks (segwit and taproot activate
// after 432 on regtest), alice and bob synced, a ChannelSat channel alice->bob confirmed by 6
// blocks, and a route alice->bob. ctx bounds the start-up only; on any error everything
// started so far is stopped.
func Start(ctx context.Context, opts Options) (_ *Network, err error) {
	if opts.Dir == "" {
		return nil, errors.New("regtest: Options.Dir is required")
	}
	if opts.BinDir == "" {
		opts.BinDir = BinDir()
	}
	if err := CheckBinaries(opts.BinDir); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	n := &Network{Dir: opts.Dir, log: opts.Logger}
	defer func() {
		if err != nil {
			_ = n.Stop()
		}
	}()
	began := time.Now()

	ports, err := freePorts(7)
	if err != nil {
		return nil, err
	}
	xprv, aliceAddr, err := aliceMasterKey()
	if err != nil {
		return nil, err
	}
	if n.btcd, err = startBtcd(ctx, opts.BinDir, filepath.Join(opts.Dir, "btcd"), ports[0], aliceAddr); err != nil {
		return nil, err
	}
	// Mining before lnd starts: alice's wallet finds the coinbases by its recovery scan, and
	// lnd does not wait on a chain whose tip is the 2011 genesis block.
	if err := n.btcd.generate(ctx, 500); err != nil {
		return nil, err
	}

	pwFile := filepath.Join(opts.Dir, "alice.password")
	const password = "regtest-alice-password"
	if err := os.WriteFile(pwFile, []byte(password), 0o600); err != nil {
		return nil, err
	}
	if n.Alice, err = startLnd(opts.BinDir, filepath.Join(opts.Dir, "alice"), "alice",
		[3]int{ports[1], ports[2], ports[3]}, n.btcd, pwFile); err != nil {
		return nil, err
	}
	if n.Bob, err = startLnd(opts.BinDir, filepath.Join(opts.Dir, "bob"), "bob",
		[3]int{ports[4], ports[5], ports[6]}, n.btcd, ""); err != nil {
		return nil, err
	}
	if err := n.Alice.connect(ctx); err != nil {
		return nil, err
	}
	if err := n.Bob.connect(ctx); err != nil {
		return nil, err
	}
	if err := n.Alice.waitState(ctx, "NON_EXISTING"); err != nil {
		return nil, err
	}
	init := map[string]any{
		"wallet_password":     base64.StdEncoding.EncodeToString([]byte(password)),
		"extended_master_key": xprv,
		// Every block is younger than this birthday's, so the scan covers the whole chain
		// (lnd's default would be 2017's). The recovery window makes it look for alice's first
		// addresses, where the coinbases went.
		"extended_master_key_birthday_timestamp": strconv.FormatInt(time.Now().Add(-48*time.Hour).Unix(), 10),
		"recovery_window":                        10,
	}
	if err := n.Alice.rest(ctx, http.MethodPost, "/v1/initwallet", init, nil); err != nil {
		return nil, fmt.Errorf("regtest: alice initwallet: %w", err)
	}
	for _, node := range []*Node{n.Alice, n.Bob} {
		if err := node.waitState(ctx, "SERVER_ACTIVE"); err != nil {
			return nil, err
		}
		info, err := node.waitSynced(ctx, 500)
		if err != nil {
			return nil, err
		}
		node.PubKey = info.IdentityPubkey
	}
	n.log.Info("regtest: nodes synced", "elapsed", time.Since(began).Round(time.Millisecond))

	if err := n.openChannel(ctx); err != nil {
		return nil, err
	}
	n.log.Info("regtest: network up", "elapsed", time.Since(began).Round(time.Millisecond),
		"alice", n.Alice.RESTURL, "bob", n.Bob.RESTURL, "dir", opts.Dir)
	return n, nil
}

// openChannel funds alice->bob and waits until alice can route to bob.
func (n *Network) openChannel(ctx context.Context) error {
	a, b := n.Alice, n.Bob
	// Alice's recovery scan finds her coinbases shortly after she reports synced.
	err := poll(ctx, "alice's mature coinbase funds (address derivation must match lnd's)", a.proc, func() error {
		var bal struct {
			Confirmed string `json:"confirmed_balance"`
		}
		if err := a.rest(ctx, http.MethodGet, "/v1/balance/blockchain", nil, &bal); err != nil {
			return err
		}
		if sat, _ := strconv.ParseInt(bal.Confirmed, 10, 64); sat < 2*ChannelSat {
			return fmt.Errorf("confirmed balance %s sat", bal.Confirmed)
		}
		return nil
	})
	if err != nil {
		return err
	}
	peer := map[string]any{"addr": map[string]any{"pubkey": b.PubKey, "host": b.P2PAddr}, "timeout": "30"}
	if err := a.rest(ctx, http.MethodPost, "/v1/peers", peer, nil); err != nil {
		return fmt.Errorf("regtest: alice connect to bob: %w", err)
	}
	pub, err := hex.DecodeString(b.PubKey)
	if err != nil {
		return fmt.Errorf("regtest: bob's pubkey: %w", err)
	}
	open := map[string]any{
		"node_pubkey":          base64.StdEncoding.EncodeToString(pub),
		"local_funding_amount": strconv.Itoa(ChannelSat),
		"sat_per_vbyte":        "2",
	}
	// POST /v1/channels is OpenChannelSync: it returns once the funding tx is published.
	if err := a.rest(ctx, http.MethodPost, "/v1/channels", open, nil); err != nil {
		return fmt.Errorf("regtest: open channel alice->bob: %w", err)
	}
	if err := poll(ctx, "funding tx in btcd's mempool", n.btcd.proc, func() error {
		txs, err := n.btcd.mempool(ctx)
		if err == nil && len(txs) == 0 {
			err = errors.New("mempool empty")
		}
		return err
	}); err != nil {
		return err
	}
	if err := n.Mine(ctx, 6); err != nil {
		return err
	}
	// "active" is not yet "payable": wait for a route, which needs the channel in alice's
	// graph and the link up.
	return poll(ctx, "a route alice->bob", a.proc, func() error {
		var routes struct {
			Routes []json.RawMessage `json:"routes"`
		}
		if err := a.rest(ctx, http.MethodGet, "/v1/graph/routes/"+b.PubKey+"/1000", nil, &routes); err != nil {
			return err
		}
		if len(routes.Routes) == 0 {
			return errors.New("no route")
		}
		var info getInfo
		if err := b.rest(ctx, http.MethodGet, "/v1/getinfo", nil, &info); err != nil {
			return err
		}
		if info.NumActiveChannels == 0 {
			return errors.New("bob has no active channel")
		}
		return nil
	})
}

// Mine mines n blocks and returns once both nodes are synced to the new tip.
func (n *Network) Mine(ctx context.Context, blocks int) error {
	if err := n.btcd.generate(ctx, blocks); err != nil {
		return err
	}
	tip, err := n.btcd.height(ctx)
	if err != nil {
		return err
	}
	for _, node := range []*Node{n.Alice, n.Bob} {
		if _, err := node.waitSynced(ctx, tip); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops lnd nodes first, then btcd: with btcd gone first, lnd hangs for many seconds.
// Safe to call more than once.
func (n *Network) Stop() error {
	n.stopOnce.Do(func() {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, node := range []*Node{n.Alice, n.Bob} {
			if node == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = node.proc.stop(15 * time.Second)
			}()
		}
		wg.Wait()
		if n.btcd != nil {
			errs = append(errs, n.btcd.proc.stop(10*time.Second))
		}
		n.stopErr = errors.Join(errs...)
	})
	return n.stopErr
}
