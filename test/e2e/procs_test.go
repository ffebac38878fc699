package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var services = []string{"scheduler", "ticker", "payer", "publisher"}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// serviceBinaries returns the directory holding the four service binaries: $OPENAGENTS_BIN
// (`make test` sets it after `make build`), else a fresh build shared by the package's tests.
func serviceBinaries(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("OPENAGENTS_BIN"); dir != "" {
		for _, s := range services {
			if _, err := os.Stat(filepath.Join(dir, s)); err != nil {
				t.Fatalf("OPENAGENTS_BIN=%s: %v (run make build)", dir, err)
			}
		}
		return dir
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "openagents-e2e-bin-*")
		if buildErr != nil {
			return
		}
		args := []string{"build", "-o", buildDir + string(os.PathSeparator)}
		for _, s := range services {
			args = append(args, "./services/"+s)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build services: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// proc is one service process. Its JSON log (stderr) goes to a file; the address its HTTP
// shell listens on is read from the "listening" line.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	addr    chan string
	done    chan struct{}
	exitErr error
}

func startProc(t *testing.T, dir, bin string, args ...string) *proc {
	t.Helper()
	name := filepath.Base(bin)
	p := &proc{name: name, logPath: filepath.Join(dir, name+".log"), addr: make(chan string, 1), done: make(chan struct{})}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), "OPENAGENTS_LOG_LEVEL=info")
	p.cmd.Stdout = logf
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = logf.Write(append(line, '\n'))
			var l struct {
				Msg  string `json:"msg"`
				HTTP string `json:"http"`
			}
			if json.Unmarshal(line, &l) == nil && l.Msg == "listening" && l.HTTP != "" {
				select {
				case p.addr <- l.HTTP:
				default:
				}
			}
		}
	}()
	go func() {
		<-scanned
		p.exitErr = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p
}

// awaitReady waits for the process's /readyz to answer 200.
func (p *proc) awaitReady(ctx context.Context) error {
	var addr string
	select {
	case addr = <-p.addr:
	case <-p.done:
		return fmt.Errorf("%s exited: %v", p.name, p.exitErr)
	case <-ctx.Done():
		return fmt.Errorf("%s: no listening address: %w", p.name, ctx.Err())
	}
	url := "http://" + strings.Replace(addr, "[::]", "127.0.0.1", 1) + "/readyz"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v", p.name, p.exitErr)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", p.name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s had exited: %v", p.name, p.exitErr)
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.exitErr, &ee) {
			return fmt.Errorf("%s: %v", p.name, p.exitErr)
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within 30s of SIGTERM", p.name)
	}
}

// tail is the end of the process's log, for failure reports.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
