// Package bench is the load run behind `openagents bench`: the whole tick pipeline (devnet
// with the four services in-process and the instant built-in model) with every agent kept
// busy, and a FLOOR run of only the cryptography and JetStream operations one tick needs, so
// the pipeline's cost can be read against what it could not do without.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/devnet"
	"github.com/openagents/runtime/pkg/fleet"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/ticker"
)

// Options of a load run.
type Options struct {
	Agents   int
	Duration time.Duration // measured window of each run, after the warm-up
	Warmup   time.Duration // excluded from the figures (cold key caches, first discovery)
	// FloorDuration is the floor run's window; 0: Duration.
	FloorDuration time.Duration
	// SkipFloor runs the pipeline only.
	SkipFloor bool
	// CPUProfile, when set, receives a CPU profile of the pipeline's measured window.
	CPUProfile string
	// Progress receives a line per phase; nil: discarded.
	Progress io.Writer
	Log      *slog.Logger
}

// Figures of one run's measured window.
type Figures struct {
	Agents        int            `json:"agents"`
	Seconds       float64        `json:"seconds"`
	Ticks         int            `json:"ticks"`
	TicksPerSec   float64        `json:"ticks_per_sec"`
	P50Ms         float64        `json:"latency_p50_ms"`
	P99Ms         float64        `json:"latency_p99_ms"`
	CPUSeconds    float64        `json:"cpu_seconds"`
	CPUSecPerTick float64        `json:"cpu_seconds_per_tick"`
	Statuses      map[string]int `json:"statuses,omitempty"`
}

// Report of a load run.
type Report struct {
	Pipeline      Figures  `json:"pipeline"`
	Floor         *Figures `json:"floor,omitempty"`
	FloorOps      FloorOps `json:"floor_ops"`
	EventsPerTick float64  `json:"events_per_tick"` // signed events each pipeline tick publishes
	SpawnSeconds  float64  `json:"spawn_seconds"`
	FundSeconds   float64  `json:"fund_seconds"`
	// CPURatio is pipeline CPU per tick over floor CPU per tick.
	CPURatio float64 `json:"cpu_ratio,omitempty"`
	// ThroughputRatio is floor ticks/s over pipeline ticks/s.
	ThroughputRatio float64 `json:"throughput_ratio,omitempty"`
	CPUs            int     `json:"cpus"`
}

// Run runs the pipeline, then the floor.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Agents <= 0 {
		o.Agents = 1000
	}
	if o.Duration <= 0 {
		o.Duration = 45 * time.Second
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	if o.FloorDuration <= 0 {
		o.FloorDuration = o.Duration
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	rep := Report{CPUs: runtimeCPUs()}
	if err := runPipeline(ctx, o, &rep); err != nil {
		return rep, err
	}
	if o.SkipFloor {
		return rep, nil
	}
	rep.FloorOps = floorOps(rep.EventsPerTick)
	f, err := runFloor(ctx, o, rep.FloorOps)
	if err != nil {
		return rep, fmt.Errorf("floor: %w", err)
	}
	rep.Floor = &f
	if f.CPUSecPerTick > 0 {
		rep.CPURatio = rep.Pipeline.CPUSecPerTick / f.CPUSecPerTick
	}
	if rep.Pipeline.TicksPerSec > 0 {
		rep.ThroughputRatio = f.TicksPerSec / rep.Pipeline.TicksPerSec
	}
	return rep, nil
}

// driver keeps every agent busy: it re-triggers an agent as soon as its previous tick is done
// and records trigger-to-result latencies while the window is open.
type driver struct {
	mu        sync.Mutex
	index     map[string]int // agent pubkey -> slot
	sentAt    []time.Time    // zero: no trigger outstanding
	seq       []int
	measuring bool
	stopped   bool
	lat       []time.Duration
	statuses  map[string]int
	ticks     int
	again     chan int
}

func newDriver(pubkeys []string) *driver {
	d := &driver{index: make(map[string]int, len(pubkeys)), sentAt: make([]time.Time, len(pubkeys)),
		seq: make([]int, len(pubkeys)), statuses: map[string]int{}, again: make(chan int, len(pubkeys))}
	for i, p := range pubkeys {
		d.index[p] = i
	}
	return d
}

// done is called when an agent's tick has finished (its result durable).
func (d *driver) done(agent, status string) {
	d.mu.Lock()
	i, ok := d.index[agent]
	if !ok || d.sentAt[i].IsZero() {
		d.mu.Unlock()
		return
	}
	if d.measuring {
		d.lat = append(d.lat, time.Since(d.sentAt[i]))
		d.statuses[status]++
		d.ticks++
	}
	d.sentAt[i] = time.Time{}
	stopped := d.stopped
	d.mu.Unlock()
	if !stopped {
		d.again <- i
	}
}

// sent marks a trigger of slot i as outstanding and returns its sequence number.
func (d *driver) sent(i int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sentAt[i] = time.Now()
	d.seq[i]++
	return d.seq[i]
}

func (d *driver) setMeasuring(on bool) {
	d.mu.Lock()
	d.measuring = on
	d.mu.Unlock()
}

// stop ends re-triggering and returns the figures of the window.
func (d *driver) stop() (ticks int, lat []time.Duration, statuses map[string]int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped, d.measuring = true, false
	return d.ticks, slices.Clone(d.lat), d.statuses
}

// outstanding counts triggers still waiting for their tick.
func (d *driver) outstanding() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, t := range d.sentAt {
		if !t.IsZero() {
			n++
		}
	}
	return n
}

// window runs the warm-up and the measured window, triggering with send, and returns the
// figures. send must be safe for concurrent use.
func (d *driver) window(ctx context.Context, o Options, dur time.Duration, n int, send func(ctx context.Context, i, seq int) error,
	around func(measured bool)) (Figures, error) {
	fig := Figures{Agents: n}
	var sendErr atomic.Value
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case i, ok := <-d.again:
					if !ok {
						return
					}
					if err := send(ctx, i, d.sent(i)); err != nil && ctx.Err() == nil {
						sendErr.Store(err)
					}
				}
			}
		}()
	}
	for i := range n {
		d.again <- i
	}
	if !sleep(ctx, o.Warmup) {
		return fig, ctx.Err()
	}
	around(true)
	d.setMeasuring(true)
	r0, t0 := cpuTime(), time.Now()
	if !sleep(ctx, dur) {
		return fig, ctx.Err()
	}
	ticks, lat, statuses := d.stop()
	elapsed, cpu := time.Since(t0), cpuTime()-r0
	around(false)
	close(d.again)
	wg.Wait()
	if err, _ := sendErr.Load().(error); err != nil {
		return fig, fmt.Errorf("trigger: %w", err)
	}
	fig.Seconds, fig.Ticks, fig.Statuses, fig.CPUSeconds = elapsed.Seconds(), ticks, statuses, cpu.Seconds()
	if ticks > 0 {
		fig.TicksPerSec = float64(ticks) / elapsed.Seconds()
		fig.CPUSecPerTick = cpu.Seconds() / float64(ticks)
		slices.Sort(lat)
		fig.P50Ms = ms(lat[len(lat)/2])
		fig.P99Ms = ms(lat[min(len(lat)-1, len(lat)*99/100)])
	}
	return fig, nil
}

func runPipeline(ctx context.Context, o Options, rep *Report) error {
	var drv atomic.Pointer[driver]
	dir, err := os.MkdirTemp("", "openagents-bench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d, err := devnet.Start(ctx, devnet.Options{Dir: dir, Services: true, Log: o.Log,
		Providers: []devnet.ProviderSpec{{Name: "reference", PriceSats: 10}},
		OnTick: func(out ticker.Outcome) {
			if dv := drv.Load(); dv != nil {
				dv.done(out.Agent, out.Status)
			}
		}})
	if err != nil {
		return err
	}
	defer d.Close()

	// Spawn: the real spawn flow (mnemonic, NIP-06 key, custody, registry, profile, sealed
	// state and schedule events). Funding goes straight from the devnet faucet to each
	// agent's account; the payer confirms the balance on the first tick.
	start := time.Now()
	pubkeys := make([]string, o.Agents)
	if err := parallel(ctx, o.Agents, 16, func(i int) error {
		sp, err := d.Fleet.Spawn(ctx, fleet.SpawnOptions{Name: fmt.Sprintf("bench-%05d", i), HeartbeatSeconds: 24 * 3600,
			Goals: []string{"keep the benchmark busy"}, Triggers: []string{"mention"},
			Limits: nipsa.BudgetLimits{DailyLimitSats: 100_000_000, PerTickLimitSats: 10}})
		if err != nil {
			return err
		}
		pubkeys[i] = sp.Agent.Pubkey
		return nil
	}); err != nil {
		return fmt.Errorf("spawn: %w", err)
	}
	rep.SpawnSeconds = time.Since(start).Seconds()
	fmt.Fprintf(o.Progress, "spawned %d agents in %.1fs (%.0f/s)\n", o.Agents, rep.SpawnSeconds, float64(o.Agents)/rep.SpawnSeconds)
	start = time.Now()
	// Up to 100k sats each, within the devnet supply (21M sats).
	each := min(100_000*1000, d.Ledger.Balances()[devln.FaucetAccount]*9/10/int64(o.Agents))
	for _, p := range pubkeys {
		if err := d.Ledger.Faucet(ctx, p, each); err != nil {
			return fmt.Errorf("fund: %w", err)
		}
	}
	rep.FundSeconds = time.Since(start).Seconds()

	dv := newDriver(pubkeys)
	drv.Store(dv)
	send := func(ctx context.Context, i, seq int) error {
		trg := contracts.Trigger{ID: "bench-" + pubkeys[i][:16] + "-" + strconv.Itoa(seq), Type: contracts.TriggerManual,
			At: time.Now().Unix(), Note: "load"}
		b, _ := json.Marshal(trg)
		_, err := d.JS.Publish(ctx, contracts.TriggerSubject(pubkeys[i]), b, jetstream.WithMsgID(trg.ID))
		return err
	}
	stream, err := d.JS.Stream(ctx, contracts.StreamPublish)
	if err != nil {
		return err
	}
	var pub0, pub1 uint64
	var prof *os.File
	fmt.Fprintf(o.Progress, "pipeline: %d agents busy for %s after a %s warm-up\n", o.Agents, o.Duration, o.Warmup)
	fig, err := dv.window(ctx, o, o.Duration, o.Agents, send, func(measured bool) {
		if info, err := stream.Info(ctx); err == nil {
			if measured {
				pub0 = info.State.LastSeq
			} else {
				pub1 = info.State.LastSeq
			}
		}
		if o.CPUProfile == "" {
			return
		}
		if measured {
			if prof, err = os.Create(o.CPUProfile); err == nil {
				if err = pprof.StartCPUProfile(prof); err != nil {
					prof.Close()
					prof = nil
				}
			}
		} else if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
		}
	})
	if err != nil {
		return err
	}
	rep.Pipeline = fig
	if fig.Ticks > 0 && pub1 > pub0 {
		rep.EventsPerTick = float64(pub1-pub0) / float64(fig.Ticks)
	}
	// Let the ticks in flight finish so the services stop cleanly.
	deadline := time.Now().Add(30 * time.Second)
	for dv.outstanding() > 0 && time.Now().Before(deadline) && sleep(ctx, 100*time.Millisecond) {
	}
	return nil
}

// parallel runs fn(0..n-1) with at most limit at once and returns the first error.
func parallel(ctx context.Context, n, limit int, fn func(i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	sem := make(chan struct{}, limit)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return first
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// cpuTime is the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
