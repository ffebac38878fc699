package metrics_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const repoRoot = "../.."

// promKeywords are identifiers of PromQL that are not metric names when not followed by "(".
var promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "inf": true,
	"nan": true, "Inf": true, "NaN": true}

// groupings take a parenthesised list of label names.
var groupings = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// skipString returns the index after the quoted string starting at i.
func skipString(s string, i int) int {
	q := s[i]
	for i++; i < len(s); i++ {
		if s[i] == '\\' && q != '`' {
			i++
		} else if s[i] == q {
			return i + 1
		}
	}
	return len(s)
}

// skipTo returns the index after the first close at or after i, skipping quoted strings.
func skipTo(s string, i int, close byte) int {
	for i < len(s) {
		switch s[i] {
		case '"', '\'', '`':
			i = skipString(s, i)
		case close:
			return i + 1
		default:
			i++
		}
	}
	return len(s)
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// selectors returns the instant vector selectors of a PromQL expression (name and matchers;
// ranges and offsets dropped), so each can be queried on its own.
func selectors(expr string) []string {
	var out []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '[':
			i = skipTo(expr, i, ']')
		case c == '{': // a selector without a name
			j := skipTo(expr, i, '}')
			out = append(out, expr[i:j])
			i = j
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			id := expr[i:j]
			k := skipSpace(expr, j)
			next := byte(0)
			if k < len(expr) {
				next = expr[k]
			}
			switch {
			case groupings[id] && next == '(':
				i = skipTo(expr, k, ')')
			case next == '(' || aggregation(expr, k): // function or aggregation
				i = j
			case id == "offset":
				for i = k; i < len(expr) && isIdent(expr[i]); i++ {
				}
			case promKeywords[id] || groupings[id]:
				i = j
			case next == '{':
				e := skipTo(expr, k, '}')
				out = append(out, id+expr[k:e])
				i = e
			default:
				out = append(out, id)
				i = j
			}
		default:
			i++
		}
	}
	return out
}

// aggregation reports whether a grouping clause starts at k ("sum by (le) (...)").
func aggregation(expr string, k int) bool {
	j := k
	for j < len(expr) && isIdent(expr[j]) {
		j++
	}
	return j > k && groupings[expr[k:j]] && !promKeywords[expr[k:j]]
}

func TestSelectors(t *testing.T) {
	got := selectors(`histogram_quantile(0.95, sum by (le, step) (rate(sa_x_bucket{job="a}b",le!=""}[5m]))) / on() sum(foo_total offset 1h) > bool 2e3
		and on() sum(up{job=~"x|y"}) or vector(0) unless sum(bar) without (a) - {__name__="baz"}`)
	want := []string{`sa_x_bucket{job="a}b",le!=""}`, "foo_total", `up{job=~"x|y"}`, "bar", `{__name__="baz"}`}
	if !slices.Equal(got, want) {
		t.Fatalf("selectors:\n got %q\nwant %q", got, want)
	}
}

// panelExpr is one PromQL expression of the dashboard or the alert rules.
type panelExpr struct {
	Where string
	Expr  string
}

func dashboardExprs(t *testing.T) []panelExpr {
	t.Helper()
	data, err := os.ReadFile(repoRoot + "/deploy/grafana/openagents.json")
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
		Panels []panel `json:"panels"` // inside rows
	}
	var dash struct {
		Panels []panel `json:"panels"`
	}
	if err := yaml.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	var out []panelExpr
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					out = append(out, panelExpr{"panel " + p.Title + " " + tg.RefID, grafanaVars(tg.Expr)})
				}
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	if len(out) == 0 {
		t.Fatal("no expressions in the dashboard")
	}
	return out
}

// grafanaVars substitutes Grafana's built-in variables with concrete values.
var grafanaVarRe = regexp.MustCompile(`\$(?:\{)?(__rate_interval|__interval|__range)(?::\w+)?(?:\})?`)

func grafanaVars(expr string) string {
	expr = grafanaVarRe.ReplaceAllString(expr, "1m")
	return expr
}

func alertExprs(t *testing.T) []panelExpr {
	t.Helper()
	data, err := os.ReadFile(repoRoot + "/deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert  string `json:"alert"`
				Record string `json:"record"`
				Expr   string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatal(err)
	}
	var out []panelExpr
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out = append(out, panelExpr{"alert " + r.Alert + r.Record, r.Expr})
		}
	}
	if len(out) == 0 {
		t.Fatal("no alert rules")
	}
	return out
}

// scrapeJobs returns the job names of deploy/prometheus/prometheus.yml.
func scrapeJobs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(repoRoot + "/deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName string `json:"job_name"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	var jobs []string
	for _, sc := range cfg.ScrapeConfigs {
		jobs = append(jobs, sc.JobName)
	}
	return jobs
}

// docMetric is one row of deploy/METRICS.md.
type docMetric struct {
	Type   string
	Labels map[string]*docLabel // nil for the "other metrics" table
}

// docLabel lists a label's documented values; Open when the list is not exhaustive.
type docLabel struct {
	Values   []string
	Prefixes []string // values like custom:<kind>
	Open     bool
}

func (l *docLabel) allows(v string) bool {
	if l.Open || slices.Contains(l.Values, v) {
		return true
	}
	for _, p := range l.Prefixes {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	return false
}

var (
	docRowRe   = regexp.MustCompile("^\\| `([a-zA-Z_:][a-zA-Z0-9_:]*)` \\|")
	docLabelRe = regexp.MustCompile("^`([a-zA-Z_][a-zA-Z0-9_]*)`:\\s*(.*)$")
	backtickRe = regexp.MustCompile("`([^`]+)`")
)

// metricsDoc parses deploy/METRICS.md: every documented metric, with type and labels for the
// services' tables (| metric | type | labels | meaning |).
func metricsDoc(t *testing.T) map[string]*docMetric {
	t.Helper()
	data, err := os.ReadFile(repoRoot + "/deploy/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*docMetric{}
	seen := map[string]*docLabel{} // label name -> last full definition ("as above")
	for _, line := range strings.Split(string(data), "\n") {
		if !docRowRe.MatchString(line) {
			continue
		}
		cols := strings.Split(strings.Trim(line, "| "), "|")
		for i := range cols {
			cols[i] = strings.TrimSpace(cols[i])
		}
		name := strings.Trim(cols[0], "`")
		if !strings.HasPrefix(name, "sa_") || len(cols) < 4 {
			out[name] = &docMetric{Type: cols[1]}
			continue
		}
		m := &docMetric{Type: cols[1], Labels: map[string]*docLabel{}}
		for _, part := range strings.Split(cols[2], ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			lm := docLabelRe.FindStringSubmatch(part)
			if lm == nil {
				t.Errorf("METRICS.md %s: cannot read label %q", name, part)
				continue
			}
			l := &docLabel{}
			for _, v := range backtickRe.FindAllStringSubmatch(lm[2], -1) {
				if p, _, ok := strings.Cut(v[1], "<"); ok {
					l.Prefixes = append(l.Prefixes, p)
				} else {
					l.Values = append(l.Values, v[1])
				}
			}
			switch {
			case strings.Contains(lm[2], "..."):
				l.Open = true
			case len(l.Values)+len(l.Prefixes) == 0 && strings.HasPrefix(lm[2], "as ") && seen[lm[1]] != nil:
				l = seen[lm[1]]
			case len(l.Values)+len(l.Prefixes) == 0:
				l.Open = true // described, not enumerated (e.g. relay URL from configuration)
			}
			seen[lm[1]] = l
			m.Labels[lm[1]] = l
		}
		out[name] = m
	}
	if len(out) == 0 {
		t.Fatal("no metrics in deploy/METRICS.md")
	}
	return out
}
