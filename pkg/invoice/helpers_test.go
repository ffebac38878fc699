package invoice_test

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ecdsa"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/lightningnetwork/lnd/zpay32"
)

// amountless makes a zero-amount ("any amount") regtest invoice with a fixed test key; devln
// never issues those.
func amountless(t testing.TB) string {
	key, _ := btcec.PrivKeyFromBytes([]byte("devnet test key, not for funds!!"))
	hash := sha256.Sum256([]byte("preimage"))
	zi, err := zpay32.NewInvoice(&chaincfg.RegressionNetParams, hash, time.Unix(1_700_000_000, 0),
		zpay32.Description("tip"), zpay32.Expiry(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	s, err := zi.Encode(zpay32.MessageSigner{SignCompact: func(m []byte) ([]byte, error) {
		return ecdsa.SignCompact(key, chainhash.HashB(m), true), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
