package deploy_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/openagents/runtime/pkg/contracts"
)

const natsAccount = "OPENAGENTS"

// natsManifests returns nats.conf from ConfigMap nats-config, the nats container of StatefulSet
// nats, and the service Deployments by name.
func natsManifests(t *testing.T) (string, *appsv1.StatefulSet, corev1.Container, map[string]*appsv1.Deployment) {
	t.Helper()
	var conf string
	var sts *appsv1.StatefulSet
	deps := map[string]*appsv1.Deployment{}
	for _, o := range loadAll(t) {
		switch v := o.Obj.(type) {
		case *corev1.ConfigMap:
			if v.Name == "nats-config" {
				conf = v.Data["nats.conf"]
			}
		case *appsv1.StatefulSet:
			if v.Name == "nats" {
				sts = v
			}
		case *appsv1.Deployment:
			deps[v.Name] = v
		}
	}
	if conf == "" || sts == nil {
		t.Fatal("ConfigMap nats-config (key nats.conf) or StatefulSet nats not found")
	}
	for _, c := range sts.Spec.Template.Spec.Containers {
		if c.Name == "nats" {
			return conf, sts, c, deps
		}
	}
	t.Fatal("StatefulSet nats has no container nats")
	return "", nil, corev1.Container{}, nil
}

type natsFixture struct {
	url       string
	monitor   string
	passwords map[string]string // Secret nats-users key -> password set in the server's env
	deps      map[string]*appsv1.Deployment
}

var confVarRe = regexp.MustCompile(`(?m):\s*\$([A-Za-z_][A-Za-z0-9_]*)\s*$`)

// startNATS parses nats.conf with nats-server's own parser, with the env the StatefulSet would
// give it (random passwords), checks the parsed options against the manifests, adapts the
// cluster/storage settings to one local node and starts it.
func startNATS(t *testing.T) *natsFixture {
	t.Helper()
	conf, sts, c, deps := natsManifests(t)
	f := &natsFixture{passwords: map[string]string{}, deps: deps}
	envs := map[string]bool{}
	for _, e := range c.Env {
		envs[e.Name] = true
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			pw := randomHex(t)
			f.passwords[e.ValueFrom.SecretKeyRef.Key] = pw
			t.Setenv(e.Name, pw)
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			t.Setenv(e.Name, sts.Name+"-0")
		}
	}
	for _, m := range confVarRe.FindAllStringSubmatch(conf, -1) {
		if !envs[m[1]] {
			t.Errorf("nats.conf uses $%s but the nats container has no such env", m[1])
		}
	}
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server rejects nats.conf: %v", err)
	}

	// The parsed config must agree with the StatefulSet and its Services.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if int32(opts.Port) != ports["client"] || int32(opts.HTTPPort) != ports["monitor"] || int32(opts.Cluster.Port) != ports["cluster"] {
		t.Errorf("nats.conf ports client %d monitor %d cluster %d, container ports %v", opts.Port, opts.HTTPPort, opts.Cluster.Port, ports)
	}
	if opts.ServerName != sts.Name+"-0" {
		t.Errorf("server_name %q: must be the pod name (KEDA reaches <server_name>.<headless service>)", opts.ServerName)
	}
	if !opts.JetStream || opts.Cluster.Name == "" {
		t.Errorf("JetStream %v, cluster name %q", opts.JetStream, opts.Cluster.Name)
	}
	if int32(len(opts.Routes)) != *sts.Spec.Replicas {
		t.Errorf("%d routes for %d replicas", len(opts.Routes), *sts.Spec.Replicas)
	}
	for i, r := range opts.Routes {
		want := fmt.Sprintf("%s-%d.%s.%s.svc.cluster.local:%d", sts.Name, i, sts.Spec.ServiceName, namespace, ports["cluster"])
		if r.Host != want {
			t.Errorf("route %d is %s, want %s", i, r.Host, want)
		}
	}
	mounted := func(p string) bool {
		for _, m := range c.VolumeMounts {
			if p == m.MountPath || strings.HasPrefix(p, m.MountPath+"/") {
				return !m.ReadOnly
			}
		}
		return false
	}
	if !mounted(opts.StoreDir) || !mounted(opts.PidFile) {
		t.Errorf("store_dir %s or pid_file %s is not on a writable volume mount", opts.StoreDir, opts.PidFile)
	}
	acc := false
	for _, a := range opts.Accounts {
		acc = acc || a.Name == natsAccount
	}
	if !acc {
		t.Errorf("nats.conf defines no account %s", natsAccount)
	}

	// One local node on random ports, storage in a temp dir.
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.HTTPHost, opts.HTTPPort = "127.0.0.1", -1
	opts.Cluster = server.ClusterOpts{}
	opts.Routes, opts.RoutesStr = nil, ""
	opts.StoreDir = t.TempDir()
	opts.PidFile = ""
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	f.url = ns.ClientURL()
	f.monitor = fmt.Sprintf("http://%s", ns.MonitorAddr().String())
	return f
}

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// client is one user's connection, with the server's permission errors collected.
type client struct {
	t    *testing.T
	user string
	nc   *nats.Conn
	js   jetstream.JetStream
	mu   sync.Mutex
	errs []error
}

// connect logs in as a service the way its Deployment does: NATS_USER, and NATS_PASSWORD from
// the Secret key the Deployment names (the server got that key's value in its env).
func (f *natsFixture) connect(t *testing.T, service string) *client {
	t.Helper()
	user, key := "", ""
	if d, ok := f.deps[service]; ok {
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			switch {
			case e.Name == "NATS_USER":
				user = e.Value
			case e.Name == "NATS_PASSWORD" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
				key = e.ValueFrom.SecretKeyRef.Key
			}
		}
	} else { // the operator has no Deployment
		user, key = service, service+"-password"
	}
	pw, ok := f.passwords[key]
	if user == "" || !ok {
		t.Fatalf("%s: NATS_USER %q / password key %q not wired to the nats server's env", service, user, key)
	}
	c := &client{t: t, user: user}
	nc, err := nats.Connect(f.url, nats.UserInfo(user, pw), nats.Name(service),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err)
			c.mu.Unlock()
		}))
	if err != nil {
		t.Fatalf("%s cannot log in: %v", user, err)
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	c.js, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// must fails the test if op fails or the server reported a permission violation meanwhile.
func (c *client) must(what string, op func() error) {
	c.t.Helper()
	if err := op(); err != nil {
		c.t.Errorf("%s: %s: %v", c.user, what, err)
	}
	if err := c.nc.Flush(); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.errs {
		c.t.Errorf("%s: %s: server said %v", c.user, what, e)
	}
	c.errs = nil
}

// denied expects the server to refuse subject for this user: op fails (or is silently dropped)
// and a permissions violation naming subject arrives.
func (c *client) denied(what, subject string, op func() error) {
	c.t.Helper()
	err := op()
	_ = c.nc.Flush()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for i, e := range c.errs {
			if errors.Is(e, nats.ErrPermissionViolation) && strings.Contains(e.Error(), `"`+subject+`"`) {
				c.errs = append(c.errs[:i], c.errs[i+1:]...)
				c.mu.Unlock()
				return
			}
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Errorf("%s: %s was allowed (op error %v); want a permissions violation on %q", c.user, what, err, subject)
}

func TestNATSConfigPermissions(t *testing.T) {
	f := startNATS(t)
	const agent = "ab12"
	ctx := ctxT(t, 60*time.Second)
	short := func() context.Context { return ctxT(t, 700*time.Millisecond) }

	op := f.connect(t, "operator")
	sched := f.connect(t, "scheduler")
	tick := f.connect(t, "ticker")
	payer := f.connect(t, "payer")
	pub := f.connect(t, "publisher")

	// Every service provisions at start-up (contracts.Provision), and the operator too.
	for _, c := range []*client{op, sched, tick, payer, pub} {
		c.must("contracts.Provision", func() error { return contracts.Provision(ctx, c.js, contracts.ProvisionOptions{}) })
	}

	// Operator: what the CLI does to spawn and drive an agent.
	kvOf := func(c *client, bucket string) jetstream.KeyValue {
		kv, err := c.js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatalf("%s: bind %s: %v", c.user, bucket, err)
		}
		return kv
	}
	op.must("put sa_registry", func() error {
		_, err := kvOf(op, contracts.BucketRegistry).Put(ctx, agent, []byte(`{"lifecycle":"active"}`))
		return err
	})
	op.must("put sa_keys", func() error { _, err := kvOf(op, contracts.BucketKeys).Put(ctx, agent, []byte("sealed")); return err })
	op.must("get sa_ledger", func() error {
		_, err := kvOf(op, contracts.BucketLedger).Get(ctx, "nothing")
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		return err
	})
	op.must("create and delete a stream", func() error {
		if _, err := op.js.CreateStream(ctx, jetstream.StreamConfig{Name: "OPS_SCRATCH", Subjects: []string{"ops.scratch"}}); err != nil {
			return err
		}
		return op.js.DeleteStream(ctx, "OPS_SCRATCH")
	})
	opSeen := make(chan *nats.Msg, 64)
	op.must("subscribe sa.>", func() error { _, err := op.nc.ChanSubscribe("sa.>", opSeen); return err })

	// Payer: serves pay/balance/invoice in queue group payer, and can reply.
	for _, prefix := range []string{contracts.SubjectPayPrefix, contracts.SubjectBalancePrefix, contracts.SubjectInvoicePrefix} {
		payer.must("serve "+prefix+">", func() error {
			_, err := payer.nc.QueueSubscribe(prefix+">", contracts.QueuePayer, func(m *nats.Msg) { _ = m.Respond([]byte("ok:" + m.Subject)) })
			return err
		})
	}
	payer.must("put sa_ledger", func() error { _, err := kvOf(payer, contracts.BucketLedger).Put(ctx, "p", []byte("x")); return err })
	payer.must("get sa_keys", func() error { _, err := kvOf(payer, contracts.BucketKeys).Get(ctx, agent); return err })

	// Scheduler: watches the registry, keeps cursors, publishes triggers, hears funded notices.
	sched.must("watch sa_registry", func() error {
		w, err := kvOf(sched, contracts.BucketRegistry).WatchAll(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = w.Stop() }()
		select {
		case e := <-w.Updates():
			if e == nil || e.Key() != agent {
				return fmt.Errorf("first watch entry %v", e)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	sched.must("put sa_cursors", func() error {
		_, err := kvOf(sched, contracts.BucketCursors).Put(ctx, "relay", []byte("1"))
		return err
	})
	funded := make(chan *nats.Msg, 4)
	sched.must("subscribe sa.funded.>", func() error { _, err := sched.nc.ChanSubscribe(contracts.SubjectFundedPrefix+">", funded); return err })
	sched.must("subscribe sa.lifecycle.>", func() error { _, err := sched.nc.SubscribeSync(contracts.SubjectLifecyclePrefix + ">"); return err })
	sched.must("publish a trigger", func() error {
		_, err := sched.js.Publish(ctx, contracts.TriggerSubject(agent), []byte(`{"type":"heartbeat"}`), jetstream.WithMsgID("hb-1"))
		return err
	})
	payer.must("publish funded, lifecycle, and a wake trigger", func() error {
		for _, s := range []string{contracts.FundedSubject(agent), contracts.LifecycleSubject(agent), contracts.TriggerSubject(agent)} {
			if _, err := payer.js.Publish(ctx, s, []byte(`{}`)); err != nil {
				return err
			}
		}
		return nil
	})
	select {
	case m := <-funded:
		if m.Subject != contracts.FundedSubject(agent) {
			t.Errorf("scheduler got %s", m.Subject)
		}
	case <-time.After(5 * time.Second):
		t.Error("scheduler never received sa.funded")
	}

	// Ticker: consumes SA_TRIGGERS as durable "ticker", asks the payer, writes state.
	tick.must("consume SA_TRIGGERS", func() error {
		cons, err := tick.js.CreateOrUpdateConsumer(ctx, contracts.StreamTriggers, jetstream.ConsumerConfig{
			Durable: contracts.ConsumerTicker, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			return err
		}
		batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if err := m.DoubleAck(ctx); err != nil {
				return err
			}
		}
		if n != 2 {
			return fmt.Errorf("fetched %d triggers, want 2 (%v)", n, batch.Error())
		}
		return nil
	})
	for _, s := range []string{contracts.PaySubject(agent), contracts.BalanceSubject(agent), contracts.InvoiceSubject(agent)} {
		tick.must("request "+s, func() error {
			m, err := tick.nc.RequestWithContext(ctx, s, []byte(`{}`))
			if err == nil && string(m.Data) != "ok:"+s {
				err = fmt.Errorf("reply %q", m.Data)
			}
			return err
		})
	}
	tick.must("get sa_keys", func() error { _, err := kvOf(tick, contracts.BucketKeys).Get(ctx, agent); return err })
	for _, b := range []string{contracts.BucketState, contracts.BucketLeases, contracts.BucketInbox, contracts.BucketTicks} {
		tick.must("put "+b, func() error { _, err := kvOf(tick, b).Put(ctx, agent, []byte("v")); return err })
	}
	tick.must("publish sa.publish and sa.dlq.trigger", func() error {
		if _, err := tick.js.Publish(ctx, contracts.PublishSubject(agent), []byte(`{}`), jetstream.WithMsgID("ev1")); err != nil {
			return err
		}
		_, err := tick.js.Publish(ctx, contracts.SubjectDeadLetter, []byte(`{}`))
		return err
	})

	// Publisher: consumes SA_PUBLISH as durable "publisher", records deliveries.
	pub.must("consume SA_PUBLISH", func() error {
		cons, err := pub.js.CreateOrUpdateConsumer(ctx, contracts.StreamPublish, jetstream.ConsumerConfig{
			Durable: contracts.ConsumerPublisher, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			return err
		}
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return err
		}
		return m.DoubleAck(ctx)
	})
	pub.must("publish sa.delivered", func() error {
		_, err := pub.js.Publish(ctx, contracts.DeliveredSubject(agent), []byte(`{}`))
		return err
	})

	// What each service must NOT do.
	tick.denied("serve sa.pay.> (queue payer)", "sa.pay.>", func() error {
		_, err := tick.nc.QueueSubscribe("sa.pay.>", contracts.QueuePayer, func(*nats.Msg) {})
		return err
	})
	tick.denied("subscribe sa.pay.>", "sa.pay.>", func() error { _, err := tick.nc.SubscribeSync("sa.pay.>"); return err })
	tick.denied("write the ledger", "$KV.sa_ledger.x", func() error { _, err := kvOf(tick, contracts.BucketLedger).Put(short(), "x", []byte("1")); return err })
	tick.denied("publish sa.funded", contracts.FundedSubject(agent), func() error { return tick.nc.Publish(contracts.FundedSubject(agent), nil) })
	pub.denied("publish sa.pay.x", contracts.PaySubject("x"), func() error { return pub.nc.Publish(contracts.PaySubject("x"), nil) })
	pub.denied("request sa.pay.x", contracts.PaySubject("x"), func() error {
		_, err := pub.nc.Request(contracts.PaySubject("x"), nil, 500*time.Millisecond)
		return err
	})
	pub.denied("publish a trigger", contracts.TriggerSubject(agent), func() error { return pub.nc.Publish(contracts.TriggerSubject(agent), nil) })
	keysGet := "$JS.API.DIRECT.GET.KV_sa_keys.$KV.sa_keys." + agent
	pub.denied("read sa_keys", keysGet, func() error { _, err := kvOf(pub, contracts.BucketKeys).Get(short(), agent); return err })
	sched.denied("read sa_keys", keysGet, func() error { _, err := kvOf(sched, contracts.BucketKeys).Get(short(), agent); return err })
	sched.denied("delete SA_TRIGGERS", "$JS.API.STREAM.DELETE.SA_TRIGGERS", func() error { return sched.js.DeleteStream(short(), contracts.StreamTriggers) })
	payer.denied("purge SA_DLQ", "$JS.API.STREAM.PURGE.SA_DLQ", func() error {
		s, err := payer.js.Stream(ctx, contracts.StreamDeadLetter)
		if err != nil {
			return err
		}
		return s.Purge(short())
	})
	payer.denied("read sa_state", "$JS.API.DIRECT.GET.KV_sa_state.$KV.sa_state."+agent, func() error {
		_, err := kvOf(payer, contracts.BucketState).Get(short(), agent)
		return err
	})
	sched.denied("steal the ticker's triggers", "$JS.API.CONSUMER.MSG.NEXT.SA_TRIGGERS.ticker", func() error {
		return sched.nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.SA_TRIGGERS.ticker", nats.NewInbox(), []byte(`{"batch":1}`))
	})
	if _, err := op.js.Stream(ctx, contracts.StreamTriggers); err != nil {
		t.Errorf("SA_TRIGGERS gone after the scheduler tried to delete it: %v", err)
	}

	// The operator saw the agent's traffic and can read every stream.
	got := map[string]bool{}
	for len(opSeen) > 0 {
		got[(<-opSeen).Subject] = true
	}
	for _, s := range []string{contracts.TriggerSubject(agent), contracts.PaySubject(agent), contracts.DeliveredSubject(agent)} {
		if !got[s] {
			t.Errorf("operator subscription on sa.> missed %s (got %v)", s, got)
		}
	}
	op.must("request sa.balance", func() error {
		_, err := op.nc.RequestWithContext(ctx, contracts.BalanceSubject(agent), nil)
		return err
	})
	op.must("purge SA_DLQ", func() error {
		s, err := op.js.Stream(ctx, contracts.StreamDeadLetter)
		if err != nil {
			return err
		}
		return s.Purge(ctx)
	})

	// KEDA reads consumer lag from the monitoring endpoint for the account the ScaledObject names.
	resp, err := http.Get(f.monitor + "/jsz?acc=" + natsAccount + "&consumers=true")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var jsz server.JSInfo
	if err := json.Unmarshal(body, &jsz); err != nil {
		t.Fatalf("/jsz: %v: %s", err, body)
	}
	var consumerSeen bool
	for _, a := range jsz.AccountDetails {
		for _, s := range a.Streams {
			for _, c := range s.Consumer {
				consumerSeen = consumerSeen || (a.Name == natsAccount && s.Name == contracts.StreamTriggers && c.Name == contracts.ConsumerTicker)
			}
		}
	}
	if !consumerSeen {
		t.Errorf("/jsz?acc=%s does not show %s/%s, which KEDA polls", natsAccount, contracts.StreamTriggers, contracts.ConsumerTicker)
	}
	for _, o := range loadAll(t) {
		if so, ok := o.Obj.(*ScaledObject); ok {
			for _, tr := range so.Spec.Triggers {
				if tr.Type == "nats-jetstream" && tr.Metadata["account"] != natsAccount {
					t.Errorf("%s: account %q, nats.conf's JetStream account is %s", o, tr.Metadata["account"], natsAccount)
				}
			}
		}
	}
}
