package regtest

import (
	"crypto/sha256"
	"fmt"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
)

// aliceMasterKey is alice's fixed BIP32 root (regtest tprv) and the first address lnd's
// wallet derives from it. Fixing the key is what lets btcd start with --miningaddr already
// pointing at alice: btcd reads it only at start-up, and restarting btcd later made lnd's
// block notifier miss blocks. Regtest only: the seed is public.
func aliceMasterKey() (xprv, firstAddr string, err error) {
	seed := sha256.Sum256([]byte("openagents regtest alice"))
	params := &chaincfg.RegressionNetParams
	master, err := hdkeychain.NewMaster(seed[:], params)
	if err != nil {
		return "", "", err
	}
	// lnd's on-chain wallet (btcwallet) gives p2wkh addresses from BIP84 m/84'/0'/0'/0/i,
	// coin type 0 on every network, derived the "non-standard" way btcwallet always has; the
	// two derivations differ only for keys with leading zero bytes, so match it exactly.
	key := master
	for _, i := range []uint32{
		hdkeychain.HardenedKeyStart + 84, hdkeychain.HardenedKeyStart + 0, hdkeychain.HardenedKeyStart + 0, 0, 0,
	} {
		//lint:ignore SA1019 btcwallet derives with DeriveNonStandard; the address must match it.
		if key, err = key.DeriveNonStandard(i); err != nil {
			return "", "", err
		}
	}
	pub, err := key.ECPubKey()
	if err != nil {
		return "", "", err
	}
	addr, err := btcutil.NewAddressWitnessPubKeyHash(btcutil.Hash160(pub.SerializeCompressed()), params)
	if err != nil {
		return "", "", fmt.Errorf("regtest: alice address: %w", err)
	}
	return master.String(), addr.EncodeAddress(), nil
}
