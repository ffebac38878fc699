package regtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAliceMasterKeyIsFixed(t *testing.T) {
	x1, a1, err := aliceMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	x2, a2, _ := aliceMasterKey()
	if x1 != x2 || a1 != a2 {
		t.Fatal("alice's key is not deterministic")
	}
	// tprv: lnd's initwallet refuses a master key for another network.
	if !strings.HasPrefix(x1, "tprv") || !strings.HasPrefix(a1, "bcrt1q") {
		t.Fatalf("master key %.8s..., address %s: want tprv and a regtest p2wkh address", x1, a1)
	}
}

func TestBinDirFromEnv(t *testing.T) {
	t.Setenv("OPENAGENTS_REGTEST_BIN", "/opt/regtest/bin")
	if got := BinDir(); got != "/opt/regtest/bin" {
		t.Fatalf("BinDir() = %s", got)
	}
	t.Setenv("OPENAGENTS_REGTEST_BIN", "")
	if got := BinDir(); !strings.Contains(got, filepath.Join("openagents", "regtest", "lnd-"+LndVersion+"_btcd-"+BtcdVersion)) {
		t.Fatalf("BinDir() = %s, want the versioned cache", got)
	}
}

func TestStartWithoutBinaries(t *testing.T) {
	dir := t.TempDir()
	// A btcd that is not executable does not count.
	if err := os.WriteFile(filepath.Join(dir, "btcd"), []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Options{Dir: t.TempDir(), BinDir: dir})
	if !errors.Is(err, ErrBinariesMissing) || !strings.Contains(err.Error(), BuildScript) {
		t.Fatalf("Start: %v, want ErrBinariesMissing naming %s", err, BuildScript)
	}
}
