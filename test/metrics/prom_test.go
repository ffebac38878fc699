package metrics_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// skipOrFail skips when a tool is missing, unless CI=true, where it fails.
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", reason)
	}
	t.Skipf("!!! SKIPPED: %s (CI=true makes this a failure)", reason)
}

// promBinaries finds prometheus and promtool, running scripts/deps.d/20-prometheus.sh once
// when they are missing.
func promBinaries(t *testing.T) (prom, promtool string) {
	t.Helper()
	look := func() bool {
		var err1, err2 error
		prom, err1 = exec.LookPath("prometheus")
		promtool, err2 = exec.LookPath("promtool")
		return err1 == nil && err2 == nil
	}
	if look() {
		return prom, promtool
	}
	out, err := exec.Command("bash", filepath.Join(repoRoot, "scripts", "deps.d", "20-prometheus.sh")).CombinedOutput()
	t.Logf("20-prometheus.sh: %v\n%s", err, out)
	if !look() {
		skipOrFail(t, "prometheus/promtool not installed and scripts/deps.d/20-prometheus.sh could not install them")
	}
	return prom, promtool
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lockedBuffer collects a child's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// prometheus is a running Prometheus server.
type prometheus struct {
	base string
	out  *lockedBuffer
	http *http.Client
}

// startPrometheus runs bin with config (YAML text) on a free 127.0.0.1 port, storage in a temp
// dir, and waits until it answers.
func startPrometheus(t *testing.T, bin, config string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := &prometheus{base: "http://" + addr, out: &lockedBuffer{}, http: &http.Client{Timeout: 5 * time.Second}}
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.out.String())
		}
	})
	p.waitFor(t, "prometheus ready", 20*time.Second, func() (bool, string) {
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", p.out.String())
		default:
		}
		resp, err := p.http.Get(p.base + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return p
}

// waitFor polls cond every 250ms until it holds or the deadline passes.
func (p *prometheus) waitFor(t *testing.T, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, d, detail)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

func (p *prometheus) get(path string, q url.Values) (json.RawMessage, error) {
	u := p.base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := p.http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s: %s: %.200s", path, resp.Status, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s: %s", r.ErrorType, r.Error, q.Get("query"))
	}
	return r.Data, nil
}

// sample is one element of an instant vector (or the single value of a scalar).
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs an instant query and returns its samples; an error is a bad query.
func (p *prometheus) query(expr string) ([]sample, error) {
	data, err := p.get("/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return nil, err
	}
	var res struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, err
	}
	switch res.ResultType {
	case "vector":
		var v []sample
		err := json.Unmarshal(res.Result, &v)
		return v, err
	case "scalar":
		var s [2]any
		err := json.Unmarshal(res.Result, &s)
		return []sample{{Value: s}}, err
	}
	return nil, fmt.Errorf("%s: result type %s", expr, res.ResultType)
}

type target struct {
	Labels    map[string]string `json:"labels"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
}

func (p *prometheus) targets() ([]target, error) {
	data, err := p.get("/api/v1/targets", nil)
	if err != nil {
		return nil, err
	}
	var res struct {
		ActiveTargets []target `json:"activeTargets"`
	}
	err = json.Unmarshal(data, &res)
	return res.ActiveTargets, err
}

type ruleState struct {
	Name      string `json:"name"`
	Query     string `json:"query"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
}

func (p *prometheus) rules() ([]ruleState, error) {
	data, err := p.get("/api/v1/rules", nil)
	if err != nil {
		return nil, err
	}
	var res struct {
		Groups []struct {
			Rules []ruleState `json:"rules"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, err
	}
	var out []ruleState
	for _, g := range res.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

// promConfig scrapes the devnet's /metrics once per job of deploy/prometheus/prometheus.yml
// that the devnet serves, each job keeping only its service's sa_<job>_* metrics, as the
// separate pods do in production. It loads the real alert rules.
func promConfig(jobs []string, target, rulesFile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n")
	fmt.Fprintf(&b, "rule_files:\n  - %q\n", rulesFile)
	fmt.Fprintf(&b, "scrape_configs:\n")
	for _, j := range jobs {
		fmt.Fprintf(&b, "  - job_name: %s\n    static_configs:\n      - targets: [%q]\n", j, target)
		fmt.Fprintf(&b, "    metric_relabel_configs:\n      - source_labels: [__name__]\n        regex: %q\n        action: keep\n", "sa_"+j+"_.*")
	}
	return b.String()
}
