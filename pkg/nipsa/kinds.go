// Package nipsa holds the NIP-SA wire format of SPEC.md: every kind in one table, typed values,
// codecs that build unsigned events and parse and validate signed ones, and state sealing.
// It does no I/O.
package nipsa

// Kinds: the one table of every kind number this project speaks.
const (
	KindAgentProfile      = 38000
	KindAgentState        = 38001
	KindAgentSchedule     = 38002
	KindPublicGoals       = 38003
	KindTickRequest       = 38010
	KindTickResult        = 38011
	KindTrajectorySession = 38030
	KindTrajectoryEvent   = 38031

	// Kinds of other NIPs the runtime speaks.
	KindTextNote       = 1
	KindEncryptedDM    = 4 // NIP-04
	KindSeal           = 13
	KindChatMessage    = 14 // NIP-17 rumor
	KindChannelCreate  = 40 // NIP-28
	KindChannelMessage = 42
	KindGiftWrap       = 1059 // NIP-59
	KindJobFeedback    = 7000 // NIP-90
	KindTextGeneration = 5050
	KindTextGenResult  = 6050
	KindZapRequest     = 9734 // NIP-57
	KindZapReceipt     = 9735
	KindWalletInfo     = 13194 // NIP-47
	KindWalletRequest  = 23194
	KindWalletResponse = 23195
	KindWalletNotify   = 23197
	KindHandlerInfo    = 31990 // NIP-89
)
