package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The nats CLI's selected context applies to openagents too (`nats context select`).
func TestNatsContextURL(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	if got := natsContextURL(); got != "" {
		t.Fatalf("no context selected: got %q", got)
	}
	ctxDir := filepath.Join(dir, "nats", "context")
	if err := os.MkdirAll(ctxDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "prod.json"), []byte(`{"description":"","url":"nats://10.0.0.5:4222"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nats", "context.txt"), []byte("prod\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := natsContextURL(); got != "nats://10.0.0.5:4222" {
		t.Fatalf("selected context: got %q", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "nats", "context.txt"), []byte("missing"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := natsContextURL(); got != "" {
		t.Fatalf("selected context without a file: got %q", got)
	}
}
