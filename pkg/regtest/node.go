package regtest

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/openagents/runtime/pkg/lnd"
)

// Node is one running lnd. The three paths and the URL are what a REST client needs.
type Node struct {
	Name         string
	RESTURL      string // https://127.0.0.1:port
	MacaroonPath string // admin.macaroon
	TLSCertPath  string // the node's self-signed tls.cert, to pin
	PubKey       string // identity key, hex; known once Start returns
	P2PAddr      string // 127.0.0.1:port
	Dir          string // --lnddir; the log is Dir/lnd.out

	proc *proc
	hc   *http.Client
}

// startLnd starts lnd against b. A node with password creates no wallet by itself: it waits for
// initwallet (alice, whose master key is fixed); the others use --noseedbackup.
func startLnd(bin, dir, name string, ports [3]int, b *btcd, passwordFile string) (*Node, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	n := &Node{
		Name:         name,
		RESTURL:      "https://" + hostPort(ports[2]),
		MacaroonPath: filepath.Join(dir, "data", "chain", "bitcoin", "regtest", "admin.macaroon"),
		TLSCertPath:  filepath.Join(dir, "tls.cert"),
		P2PAddr:      hostPort(ports[0]),
		Dir:          dir,
	}
	args := []string{
		"--lnddir=" + dir, "--alias=" + name,
		"--bitcoin.regtest", "--bitcoin.node=btcd",
		"--btcd.rpchost=" + b.rpcAddr, "--btcd.rpcuser=" + b.rpcUser, "--btcd.rpcpass=" + b.rpcPass,
		"--btcd.rpccert=" + b.certPath,
		"--listen=" + n.P2PAddr, "--rpclisten=" + hostPort(ports[1]), "--restlisten=" + hostPort(ports[2]),
		"--nobootstrap", "--debuglevel=info",
		// Faster gossip and HTLC commitment: the defaults are tuned for mainnet latency.
		"--trickledelay=50", "--channel-commit-interval=10ms",
	}
	if passwordFile != "" {
		args = append(args, "--wallet-unlock-password-file="+passwordFile, "--wallet-unlock-allow-create")
	} else {
		args = append(args, "--noseedbackup")
	}
	p, err := startProc("lnd "+name, filepath.Join(bin, "lnd"), args, filepath.Join(dir, "lnd.out"))
	if err != nil {
		return nil, err
	}
	n.proc = p
	return n, nil
}

// connect waits for tls.cert and pins it. lnd writes the certificate before it listens.
func (n *Node) connect(ctx context.Context) error {
	return poll(ctx, n.Name+" tls.cert", n.proc, func() error {
		tlsConf, err := lnd.PinnedTLS(n.TLSCertPath)
		if err != nil {
			return err
		}
		n.hc = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}, Timeout: time.Minute}
		return nil
	})
}

// waitState polls /v1/state (no macaroon needed) until want.
func (n *Node) waitState(ctx context.Context, want ...string) error {
	return poll(ctx, n.Name+" state "+fmt.Sprint(want), n.proc, func() error {
		var st struct {
			State string `json:"state"`
		}
		if err := n.rest(ctx, http.MethodGet, "/v1/state", nil, &st); err != nil {
			return err
		}
		for _, w := range want {
			if st.State == w {
				return nil
			}
		}
		return fmt.Errorf("state %s", st.State)
	})
}

type getInfo struct {
	IdentityPubkey    string `json:"identity_pubkey"`
	BlockHeight       int64  `json:"block_height"`
	SyncedToChain     bool   `json:"synced_to_chain"`
	NumActiveChannels int64  `json:"num_active_channels"`
}

// waitSynced polls until lnd is synced to the chain at height (or above).
func (n *Node) waitSynced(ctx context.Context, height int64) (getInfo, error) {
	var info getInfo
	err := poll(ctx, fmt.Sprintf("%s synced at height %d", n.Name, height), n.proc, func() error {
		if err := n.rest(ctx, http.MethodGet, "/v1/getinfo", nil, &info); err != nil {
			return err
		}
		if !info.SyncedToChain || info.BlockHeight < height {
			return fmt.Errorf("synced=%v height=%d", info.SyncedToChain, info.BlockHeight)
		}
		return nil
	})
	return info, err
}

// rest does one REST call; the admin macaroon is sent once it exists on disk.
func (n *Node) rest(ctx context.Context, method, path string, in, out any) error {
	if n.hc == nil {
		return errors.New("not connected")
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.RESTURL+path, body)
	if err != nil {
		return err
	}
	if mac, err := os.ReadFile(n.MacaroonPath); err == nil {
		req.Header.Set("Grpc-Metadata-macaroon", hex.EncodeToString(mac))
	}
	resp, err := n.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: http %d: %.300s", method, path, resp.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// poll retries f every 50 ms until it succeeds, ctx ends or p exits. The timeout error names
// what was awaited and f's last error.
func poll(ctx context.Context, what string, p *proc, f func() error) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = f(); last == nil {
			return nil
		}
		if p != nil {
			if err := p.exited(); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("regtest: waiting for %s: %w (last: %s)", what, ctx.Err(), shortErr(last))
		case <-tick.C:
		}
	}
}
