package devnet

import (
	"log/slog"
	"os"
	"testing"
)

// testLog logs to the test at the level in OPENAGENTS_TEST_LOG (default warn).
func testLog(t *testing.T) *slog.Logger {
	var lvl slog.Level = slog.LevelWarn
	if v := os.Getenv("OPENAGENTS_TEST_LOG"); v != "" {
		_ = lvl.UnmarshalText([]byte(v))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}
