// Package scheduler_test runs the scheduler binary as separate processes against a real
// (embedded) NATS: replicas side by side, one killed mid-run, and checks what reaches
// SA_TRIGGERS.
package scheduler_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/natsx"
	"github.com/openagents/runtime/pkg/registry"
	"github.com/openagents/runtime/pkg/trigger"
)

func buildScheduler(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "scheduler")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join("..", "..", "services", "scheduler")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type proc struct {
	cmd  *exec.Cmd
	http string
	done chan error
}

func startProc(t *testing.T, bin, natsURL string) *proc {
	t.Helper()
	p := &proc{http: freeAddr(t), done: make(chan error, 1)}
	p.cmd = exec.Command(bin, "-nats", natsURL, "-http", p.http)
	p.cmd.Env = append(os.Environ(), "OPENAGENTS_LOG_LEVEL=warn")
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	await(t, 30*time.Second, "replica ready", func() bool { return get(p.http, "/readyz") == "ready\n" })
	return p
}

func get(addr, path string) string {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return ""
	}
	return string(b)
}

func await(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slots counts stored heartbeat triggers per (agent, slot).
func slots(t *testing.T, js jetstream.JetStream) map[string]map[int64]int {
	ctx := context.Background()
	st, err := js.Stream(ctx, contracts.StreamTriggers)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[int64]int{}
	if info.State.Msgs == 0 {
		return out
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		var tr contracts.Trigger
		if err := json.Unmarshal(m.Data, &tr); err != nil || tr.Type != contracts.TriggerHeartbeat {
			t.Fatalf("unexpected message on %s: %s", m.Subject, m.Data)
		}
		agent := contracts.AgentFromSubject(m.Subject)
		rest, ok := strings.CutPrefix(tr.ID, strings.TrimSuffix(trigger.HeartbeatID(agent, 0), "0"))
		slot, err := strconv.ParseInt(rest, 10, 64)
		if !ok || err != nil {
			t.Fatalf("heartbeat id %q on %s", tr.ID, m.Subject)
		}
		if out[agent] == nil {
			out[agent] = map[int64]int{}
		}
		out[agent][slot]++
	}
	return out
}

// Three scheduler processes publish each heartbeat slot once; killing one (SIGKILL) loses no
// slot, and another stops cleanly on SIGTERM.
func TestReplicaProcesses(t *testing.T) {
	bin := buildScheduler(t)
	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	ctx := context.Background()
	nc, js, err := natsx.ConnectAndProvision(ctx, natsx.ConnectOptions{URL: ns.URL()}, contracts.ProvisionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	var agents []string
	for i := range 4 {
		var k [32]byte
		_, _ = rand.Read(k[:])
		pub := hex.EncodeToString(k[:])
		agents = append(agents, pub)
		if err := reg.Create(ctx, registry.Agent{Pubkey: pub, Name: fmt.Sprintf("p%d", i), Lifecycle: "active", Active: true, HeartbeatSeconds: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var procs []*proc
	for range 3 {
		procs = append(procs, startProc(t, bin, ns.URL()))
	}
	enough := func(n int) func() bool {
		return func() bool {
			s := slots(t, js)
			for _, a := range agents {
				if len(s[a]) < n {
					return false
				}
			}
			return true
		}
	}
	await(t, 20*time.Second, "2 slots per agent", enough(2))
	if err := procs[0].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-procs[0].done
	await(t, 20*time.Second, "5 slots per agent", enough(5))
	if !strings.Contains(get(procs[1].http, "/metrics"), `sa_scheduler_triggers_total{source="heartbeat",type="heartbeat"}`) {
		t.Error("/metrics lacks sa_scheduler_triggers_total")
	}
	if err := procs[1].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-procs[1].done; err != nil {
		t.Errorf("SIGTERM: %v, want a clean exit", err)
	}
	_ = procs[2].cmd.Process.Signal(syscall.SIGTERM)
	<-procs[2].done

	for _, a := range agents {
		var keys []int64
		for s, n := range slots(t, js)[a] {
			if n != 1 {
				t.Errorf("agent %s slot %d stored %d times", a[:8], s, n)
			}
			keys = append(keys, s)
		}
		slices.Sort(keys)
		if int64(len(keys)) != keys[len(keys)-1]-keys[0]+1 {
			t.Errorf("agent %s: a slot was lost across the kill: %v", a[:8], keys)
		}
	}
}
