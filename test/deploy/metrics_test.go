package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const promDir = repoRoot + "/deploy/prometheus"

// knownMetrics mirrors deploy/METRICS.md: the services' metrics, then the few from Prometheus
// and the NATS exporter. TestMetricsDoc keeps the two in step.
var knownMetrics = map[string]string{
	"sa_ticker_ticks_total":                  "counter",
	"sa_ticker_step_duration_seconds":        "histogram",
	"sa_ticker_tick_duration_seconds":        "histogram",
	"sa_ticker_triggers_total":               "counter",
	"sa_ticker_triggers_coalesced_total":     "counter",
	"sa_ticker_dead_letters_total":           "counter",
	"sa_ticker_consumer_pending":             "gauge",
	"sa_payer_payments_total":                "counter",
	"sa_payer_sats_spent_total":              "counter",
	"sa_payer_sats_received_total":           "counter",
	"sa_payer_fees_sats_total":               "counter",
	"sa_payer_budget_refusals_total":         "counter",
	"sa_payer_inflight_payments":             "gauge",
	"sa_payer_reconcile_total":               "counter",
	"sa_payer_agents":                        "gauge",
	"sa_scheduler_agents":                    "gauge",
	"sa_scheduler_triggers_total":            "counter",
	"sa_scheduler_relay_connected":           "gauge",
	"sa_scheduler_events_dropped_total":      "counter",
	"sa_scheduler_heartbeat_lag_seconds":     "histogram",
	"sa_publisher_events_total":              "counter",
	"sa_publisher_relay_writes_total":        "counter",
	"sa_publisher_delivery_duration_seconds": "histogram",
	"sa_publisher_consumer_pending":          "gauge",
	"up":                                     "prometheus",
	"gnatsd_varz_connections":                "exporter",
	"gnatsd_varz_slow_consumers":             "exporter",
}

var (
	// identifiers in PromQL: metric names, functions, keywords, label names
	identRe = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	// things that are not metric names: quoted strings, label matchers/groupings, durations
	promStrip = []*regexp.Regexp{
		regexp.MustCompile(`"(?:[^"\\]|\\.)*"`),
		regexp.MustCompile(`\{[^}]*\}`),
		regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`),
		regexp.MustCompile(`\[[^\]]*\]`),
		regexp.MustCompile(`\boffset\s+\w+`),
	}
	promWords = map[string]bool{}
)

func init() {
	for _, w := range strings.Fields(`sum min max avg count stddev stdvar topk bottomk quantile count_values
		rate irate increase delta idelta deriv histogram_quantile abs absent absent_over_time ceil floor round
		clamp clamp_min clamp_max vector scalar time timestamp label_replace label_join sort sort_desc
		avg_over_time min_over_time max_over_time sum_over_time count_over_time last_over_time changes resets
		predict_linear and or unless bool le inf nan Inf NaN e`) {
		promWords[w] = true
	}
}

// metricNames returns the metric names a PromQL expression references (histogram _bucket,
// _sum and _count suffixes folded into the histogram's name).
func metricNames(expr string) []string {
	for _, re := range promStrip {
		expr = re.ReplaceAllString(expr, " ")
	}
	var out []string
	for _, id := range identRe.FindAllString(expr, -1) {
		if promWords[id] {
			continue
		}
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(id, suf); ok && knownMetrics[base] == "histogram" {
				id = base
			}
		}
		out = append(out, id)
	}
	return out
}

func TestMetricNameExtraction(t *testing.T) {
	got := metricNames(`histogram_quantile(0.95, sum by (le, step) (rate(sa_ticker_step_duration_seconds_bucket{job="x"}[5m]))) / on() sum(foo_total offset 1h) > bool 2`)
	if !slices.Equal(got, []string{"sa_ticker_step_duration_seconds", "foo_total"}) {
		t.Fatalf("metricNames: %v", got)
	}
}

func checkExpr(t *testing.T, where, expr string) {
	t.Helper()
	names := metricNames(expr)
	if len(names) == 0 {
		t.Errorf("%s: %q references no metric", where, expr)
	}
	for _, n := range names {
		if _, ok := knownMetrics[n]; !ok {
			t.Errorf("%s: %q uses %s, which is not in deploy/METRICS.md", where, expr, n)
		}
	}
}

func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile(repoRoot + "/deploy/grafana/openagents.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard uid %q with %d panels", dash.UID, len(dash.Panels))
	}
	used := map[string]bool{}
	titles := ""
	for _, p := range dash.Panels {
		titles += strings.ToLower(p.Title) + "|"
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, tg := range p.Targets {
			checkExpr(t, "panel "+p.Title, tg.Expr)
			for _, n := range metricNames(tg.Expr) {
				used[n] = true
			}
		}
	}
	for _, want := range []string{"lifecycle", "ticks", "latency", "sats spent", "payment failures", "budget refusals", "consumer lag", "relay"} {
		if !strings.Contains(titles, want) {
			t.Errorf("no panel about %q (titles: %s)", want, titles)
		}
	}
	for n, kind := range knownMetrics {
		if strings.HasPrefix(n, "sa_") && !used[n] {
			t.Errorf("dashboard never shows %s (%s)", n, kind)
		}
	}
}

func TestAlertRulesUseKnownMetrics(t *testing.T) {
	data, err := os.ReadFile(promDir + "/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatal(err)
	}
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			checkExpr(t, "alert "+r.Alert, r.Expr)
		}
	}
	for _, want := range []string{"OpenAgentsNoTicks", "OpenAgentsPaymentFailures", "OpenAgentsAgentsDying", "OpenAgentsDeadLetterGrowth"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestMetricsDoc keeps deploy/METRICS.md and knownMetrics identical.
func TestMetricsDoc(t *testing.T) {
	data, err := os.ReadFile(repoRoot + "/deploy/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_:]+)`").FindAllStringSubmatch(string(data), -1) {
		doc[m[1]] = true
	}
	for n := range knownMetrics {
		if !doc[n] {
			t.Errorf("%s is not documented in deploy/METRICS.md", n)
		}
	}
	for n := range doc {
		if _, ok := knownMetrics[n]; !ok {
			t.Errorf("deploy/METRICS.md documents %s, missing from knownMetrics", n)
		}
	}
}

func promtool(t *testing.T, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		skipOrFail(t, "promtool not installed (scripts/deps.d/20-prometheus.sh installs it)")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = promDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

func TestPromtoolCheckRules(t *testing.T) { promtool(t, "check", "rules", "alerts.yml") }
func TestPromtoolTestRules(t *testing.T)  { promtool(t, "test", "rules", "alerts_test.yml") }
func TestPromtoolCheckConfig(t *testing.T) {
	if _, err := os.Stat(filepath.Join(promDir, "prometheus.yml")); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "config", "prometheus.yml")
}

// TestScrapeTargetsExist checks every dns_sd target of prometheus.yml is a headless Service of
// deploy/k8s (so its A records are the pods) whose pods listen on the scraped port.
func TestScrapeTargetsExist(t *testing.T) {
	data, err := os.ReadFile(promDir + "/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName      string `json:"job_name"`
			DNSSDConfigs []struct {
				Names []string `json:"names"`
				Type  string   `json:"type"`
				Port  int32    `json:"port"`
			} `json:"dns_sd_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	objs := loadAll(t)
	services := map[string]*corev1.Service{}
	var pods []corev1.PodSpec
	var podLabels []map[string]string
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *corev1.Service:
			services[v.Name] = v
		case *appsv1.Deployment:
			pods, podLabels = append(pods, v.Spec.Template.Spec), append(podLabels, v.Spec.Template.Labels)
		case *appsv1.StatefulSet:
			pods, podLabels = append(pods, v.Spec.Template.Spec), append(podLabels, v.Spec.Template.Labels)
		}
	}
	jobs := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		jobs[sc.JobName] = true
		if len(sc.DNSSDConfigs) == 0 {
			t.Errorf("job %s: no dns_sd_configs", sc.JobName)
		}
		for _, d := range sc.DNSSDConfigs {
			for _, name := range d.Names {
				svcName, rest, _ := strings.Cut(name, ".")
				svc := services[svcName]
				if svc == nil || rest != namespace+".svc.cluster.local" {
					t.Errorf("job %s: %s is not a Service in %s", sc.JobName, name, namespace)
					continue
				}
				if svc.Spec.ClusterIP != corev1.ClusterIPNone {
					t.Errorf("job %s: Service %s is not headless; its A record would be one virtual IP", sc.JobName, svcName)
				}
				ok := false
				for i, pod := range pods {
					ok = ok || (selects(svc.Spec.Selector, podLabels[i]) && podHasPort(pod, intstr.FromInt32(d.Port)))
				}
				if !ok {
					t.Errorf("job %s: no pod behind %s listens on %d", sc.JobName, svcName, d.Port)
				}
			}
		}
	}
	for _, j := range []string{"scheduler", "ticker", "payer", "publisher", "nats"} {
		if !jobs[j] {
			t.Errorf("no scrape job %s", j)
		}
	}
}
