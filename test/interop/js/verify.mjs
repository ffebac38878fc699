// Independent peer for test/interop: nostr-tools (not go-nostr) checks what the Go runtime
// produced and seals a state of its own for Go to open.
//
//   node verify.mjs <input.json>
//
// input:  {"agent_sk", "agent_pk", "events": [signed NIP-SA events], "tampered": [events that
//          must NOT verify], "sealed_state": signed 38001 sealed by Go}
// output (stdout, JSON): {"verified", "rejected", "failures": [...], "opened": <state JSON>,
//          "sealed_by_js": signed 38001 whose state nostr-tools sealed}
// The key is a throwaway test key written by the Go test; nothing here prints it.
import { readFileSync } from 'node:fs'
import { verifyEvent, finalizeEvent, getPublicKey } from 'nostr-tools/pure'
import * as nip44 from 'nostr-tools/nip44'
import { hexToBytes } from 'nostr-tools/utils'

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const failures = []
let verified = 0
let rejected = 0

for (const ev of input.events) {
  if (verifyEvent({ ...ev })) verified++
  else failures.push(`kind ${ev.kind} ${ev.id}: valid Go event did not verify`)
}
for (const ev of input.tampered) {
  if (!verifyEvent({ ...ev })) rejected++
  else failures.push(`kind ${ev.kind} ${ev.id}: tampered event verified`)
}

const sk = hexToBytes(input.agent_sk)
if (getPublicKey(sk) !== input.agent_pk) failures.push('public key derivation differs from Go')

// nostr-tools takes the PRIVATE key first (go-nostr takes the public key first).
const ck = nip44.getConversationKey(sk, input.agent_pk)
const sealed = input.sealed_state
if (!verifyEvent({ ...sealed })) failures.push('sealed state signature did not verify')
const versionTag = sealed.tags.find((t) => t[0] === 'state_version')
if (!versionTag || versionTag[1] !== '1') failures.push('sealed state has no state_version 1 tag')
const opened = JSON.parse(nip44.decrypt(sealed.content, ck))

// Seal a state of our own: the next tick, one memory more.
const next = structuredClone(opened)
next.tick_count += 1
next.last_tick += 60
next.memory.push({ type: 'tick', content: 'sealed by nostr-tools ✓', timestamp: next.last_tick })
const plain = JSON.stringify(next)
const meta = (k, n) => ['state_meta', k, String(n)]
const sealedByJS = finalizeEvent(
  {
    kind: 38001,
    created_at: Math.floor(Date.now() / 1000),
    tags: [
      ['d', 'state'],
      ['encrypted'],
      ['state_version', '1'],
      meta('goals', next.goals.length),
      meta('memory', next.memory.length),
      meta('pending_tasks', next.pending_tasks.length),
      meta('beliefs', Object.keys(next.beliefs).length),
      meta('tick_count', next.tick_count),
      meta('last_tick', next.last_tick),
      meta('content_bytes', new TextEncoder().encode(plain).length),
    ],
    content: nip44.encrypt(plain, ck),
  },
  sk,
)

process.stdout.write(JSON.stringify({ verified, rejected, failures, opened, sealed_by_js: sealedByJS }))
