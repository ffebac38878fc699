package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfile checks deploy/docker/Dockerfile without docker: the build stage is golang at the
// go.work version, builds static, every TARGET it documents (and its default) is a main package
// in the workspace, COPY sources exist, and the final stage is distroless/scratch and non-root.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(repoRoot + "/deploy/docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	work, err := os.ReadFile(repoRoot + "/go.work")
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(work))
	argVer := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)`).FindStringSubmatch(df)
	if goVer == nil || argVer == nil || argVer[1] != goVer[1] {
		t.Errorf("GO_VERSION %v does not match go.work's go %v", argVer, goVer)
	}
	froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) < 2 || !strings.HasPrefix(froms[0][1], "golang:") {
		t.Fatalf("want a golang build stage and a final stage, got %v", froms)
	}
	final := froms[len(froms)-1][1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final stage %s is neither distroless static nor scratch", final)
	}
	lastStage := df[strings.LastIndex(df, "\nFROM "):]
	user := regexp.MustCompile(`(?m)^USER (\d+)`).FindStringSubmatch(lastStage)
	if user == nil || user[1] == "0" {
		t.Errorf("final stage must set a numeric non-root USER, got %v", user)
	}
	if !strings.Contains(df, "CGO_ENABLED=0") || !strings.Contains(df, "./${TARGET}") {
		t.Error("build must be CGO_ENABLED=0 go build ./${TARGET}")
	}
	for _, m := range regexp.MustCompile(`(?m)^COPY (?:--\S+ )*(.+) \S+$`).FindAllStringSubmatch(df, -1) {
		if strings.Contains(m[0], "--from=") {
			continue
		}
		for _, src := range strings.Fields(m[1]) {
			if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
				t.Errorf("COPY %s: %v", src, err)
			}
		}
	}
	targets := regexp.MustCompile(`(?m)^ARG TARGET=(\S+)`).FindStringSubmatch(df)
	if targets == nil {
		t.Fatal("no ARG TARGET default")
	}
	list := regexp.MustCompile(`(?m)^# TARGET: (.+)$`).FindStringSubmatch(df)
	if list == nil {
		t.Fatal("Dockerfile does not document its TARGETs")
	}
	all := append(strings.Split(list[1], " | "), targets[1])
	for _, want := range []string{"services/scheduler", "services/ticker", "services/payer", "services/publisher", "cmd/openagents"} {
		if !strings.Contains(list[1], want) {
			t.Errorf("TARGET %s not documented", want)
		}
	}
	for _, target := range all {
		target = strings.TrimSpace(target)
		if !strings.Contains(string(work), "./"+target) {
			t.Errorf("TARGET %s is not a module in go.work", target)
		}
		if !hasMain(t, filepath.Join(repoRoot, target)) {
			t.Errorf("TARGET %s has no package main", target)
		}
	}
	// The k8s Deployments run the uid the image runs as.
	if !strings.Contains(lastStage, "USER 65532") {
		t.Error("final stage should run as 65532, the runAsUser of deploy/k8s")
	}
}

func hasMain(t *testing.T, dir string) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if regexp.MustCompile(`(?m)^package main\b`).Match(b) {
			return true
		}
	}
	return false
}
