package regtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/openagents/runtime/pkg/lnd"
)

// btcd is the regtest chain backend and its JSON-RPC client. btcd has no wallet: it mines to
// the address given at start-up (alice's), which is why that address must be known first.
type btcd struct {
	proc     *proc
	rpcAddr  string
	rpcUser  string
	rpcPass  string
	certPath string
	hc       *http.Client
	id       atomic.Int64
}

func startBtcd(ctx context.Context, bin, dir string, port int, miningAddr string) (*btcd, error) {
	for _, d := range []string{"data", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	// btcd has no --appdata override for its config file: give it an empty one, or it would
	// read (and create) ~/.btcd/btcd.conf.
	conf := filepath.Join(dir, "btcd.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		return nil, err
	}
	b := &btcd{
		rpcAddr:  hostPort(port),
		rpcUser:  "regtest",
		rpcPass:  "regtest",
		certPath: filepath.Join(dir, "rpc.cert"),
	}
	args := []string{
		"--regtest", "--configfile=" + conf,
		"--datadir=" + filepath.Join(dir, "data"), "--logdir=" + filepath.Join(dir, "logs"),
		"--rpccert=" + b.certPath, "--rpckey=" + filepath.Join(dir, "rpc.key"),
		"--rpclisten=" + b.rpcAddr, "--rpcuser=" + b.rpcUser, "--rpcpass=" + b.rpcPass,
		"--nolisten", "--nodnsseed", "--txindex", "--miningaddr=" + miningAddr,
	}
	p, err := startProc("btcd", filepath.Join(bin, "btcd"), args, filepath.Join(dir, "btcd.out"))
	if err != nil {
		return nil, err
	}
	b.proc = p
	// btcd writes its self-signed RPC certificate at start-up; pin it once it is complete.
	err = poll(ctx, "btcd RPC", p, func() error {
		tlsConf, err := lnd.PinnedTLS(b.certPath)
		if err != nil {
			return err
		}
		b.hc = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}, Timeout: time.Minute}
		var height int64
		return b.call(ctx, "getblockcount", nil, &height)
	})
	if err != nil {
		_ = p.stop(5 * time.Second)
		return nil, err
	}
	return b, nil
}

// call does one JSON-RPC 1.0 request.
func (b *btcd) call(ctx context.Context, method string, params []any, out any) error {
	if params == nil {
		params = []any{}
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "1.0", "id": b.id.Add(1), "method": method, "params": params})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+b.rpcAddr, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(b.rpcUser, b.rpcPass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.hc.Do(req)
	if err != nil {
		return fmt.Errorf("btcd %s: %w", method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("btcd %s: %w", method, err)
	}
	var reply struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		return fmt.Errorf("btcd %s: http %d: %.200q", method, resp.StatusCode, raw)
	}
	if reply.Error != nil {
		return fmt.Errorf("btcd %s: %s (code %d)", method, reply.Error.Message, reply.Error.Code)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(reply.Result, out)
}

func (b *btcd) generate(ctx context.Context, n int) error {
	var hashes []string
	if err := b.call(ctx, "generate", []any{n}, &hashes); err != nil {
		return err
	}
	if len(hashes) != n {
		return fmt.Errorf("btcd generate: asked %d blocks, got %d", n, len(hashes))
	}
	return nil
}

func (b *btcd) height(ctx context.Context) (int64, error) {
	var h int64
	err := b.call(ctx, "getblockcount", nil, &h)
	return h, err
}

func (b *btcd) mempool(ctx context.Context) ([]string, error) {
	var txids []string
	err := b.call(ctx, "getrawmempool", nil, &txids)
	return txids, err
}
