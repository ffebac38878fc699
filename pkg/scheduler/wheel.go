package scheduler

import (
	"encoding/binary"
)

// Wheel holds every agent's next heartbeat in one indexed min-heap of compact entries: no
// goroutine or timer per agent, ~56 bytes per entry plus 4 in the heap and one map slot, so a
// million agents fit in about 150 MB. Times are unix milliseconds. A Wheel is not safe for
// concurrent use; the heartbeat loop guards it with a mutex.
//
// Slots: for an agent with interval I and phase P (a hash of its pubkey mod I), slot
// s = floor((t + P) / I) holds at time t and slot s comes due at s*I - P. Every replica derives
// the same slot numbers from the same registry data, which is what lets Nats-Msg-Id collapse
// the replicas' publishes into one trigger per slot.
type Wheel struct {
	entries []entry
	heap    []int32 // indices into entries, ordered by entries[i].due
	index   map[[32]byte]int32
	free    []int32
}

type entry struct {
	pub   [32]byte
	due   int64 // unix ms of the next slot
	every int64 // interval in ms; 0 marks a free entry
	pos   int32 // position in heap
}

// Due is one heartbeat that came due.
type Due struct {
	Pub   [32]byte
	Slot  int64
	DueMs int64 // when the slot came due (unix ms)
}

// NewWheel makes an empty wheel; sizeHint preallocates for that many agents.
func NewWheel(sizeHint int) *Wheel {
	return &Wheel{
		entries: make([]entry, 0, sizeHint),
		heap:    make([]int32, 0, sizeHint),
		index:   make(map[[32]byte]int32, sizeHint),
	}
}

// Len is the number of scheduled agents.
func (w *Wheel) Len() int { return len(w.heap) }

// Phase is the agent's offset within its interval: the pubkey's first 8 bytes mod every. An
// x-only pubkey is already the output of a hash, so its bytes spread a fleet evenly.
func Phase(pub [32]byte, everyMs int64) int64 {
	if everyMs <= 0 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(pub[:8]) % uint64(everyMs))
}

// SlotAt is the slot holding at nowMs.
func SlotAt(pub [32]byte, everyMs, nowMs int64) int64 {
	return floorDiv(nowMs+Phase(pub, everyMs), everyMs)
}

// SlotDue is when slot comes due.
func SlotDue(pub [32]byte, everyMs, slot int64) int64 {
	return slot*everyMs - Phase(pub, everyMs)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Interval returns the agent's scheduled interval in ms, or false if it is not scheduled.
func (w *Wheel) Interval(pub [32]byte) (int64, bool) {
	i, ok := w.index[pub]
	if !ok {
		return 0, false
	}
	return w.entries[i].every, true
}

// Set schedules pub every everyMs. An agent already on that interval keeps its due time (a
// registry change that does not touch the schedule must not shift or re-fire it). Otherwise its
// next due time is the first slot after nowMs, or, when catchUpFromMs >= 0, the current slot if
// that came due after catchUpFromMs: the one heartbeat missed while no scheduler was running.
func (w *Wheel) Set(pub [32]byte, everyMs, nowMs, catchUpFromMs int64) {
	if everyMs <= 0 {
		w.Remove(pub)
		return
	}
	cur := SlotAt(pub, everyMs, nowMs)
	due := SlotDue(pub, everyMs, cur+1)
	if catchUpFromMs >= 0 {
		if d := SlotDue(pub, everyMs, cur); d > catchUpFromMs {
			due = d
		}
	}
	if i, ok := w.index[pub]; ok {
		e := &w.entries[i]
		if e.every == everyMs {
			return
		}
		e.every, e.due = everyMs, due
		w.fix(int(e.pos))
		return
	}
	var i int32
	if n := len(w.free); n > 0 {
		i = w.free[n-1]
		w.free = w.free[:n-1]
	} else {
		w.entries = append(w.entries, entry{})
		i = int32(len(w.entries) - 1)
	}
	w.entries[i] = entry{pub: pub, due: due, every: everyMs, pos: int32(len(w.heap))}
	w.index[pub] = i
	w.heap = append(w.heap, i)
	w.up(len(w.heap) - 1)
}

// Remove unschedules pub.
func (w *Wheel) Remove(pub [32]byte) {
	i, ok := w.index[pub]
	if !ok {
		return
	}
	delete(w.index, pub)
	pos := int(w.entries[i].pos)
	last := len(w.heap) - 1
	if pos != last {
		w.swap(pos, last)
	}
	w.heap = w.heap[:last]
	if pos != last {
		w.fix(pos)
	}
	w.entries[i] = entry{}
	w.free = append(w.free, i)
}

// NextDue is the earliest due time, if any agent is scheduled.
func (w *Wheel) NextDue() (int64, bool) {
	if len(w.heap) == 0 {
		return 0, false
	}
	return w.entries[w.heap[0]].due, true
}

// PopDue appends to out up to max heartbeats due at or before nowMs and moves each of those
// agents to its first slot after nowMs, so a loop that fell behind fires each agent once, not
// once per missed slot.
func (w *Wheel) PopDue(nowMs int64, max int, out []Due) []Due {
	for len(w.heap) > 0 && max > 0 {
		e := &w.entries[w.heap[0]]
		if e.due > nowMs {
			break
		}
		ph := Phase(e.pub, e.every)
		slot := floorDiv(e.due+ph, e.every)
		out = append(out, Due{Pub: e.pub, Slot: slot, DueMs: e.due})
		next := (slot+1)*e.every - ph
		if next <= nowMs {
			next = (floorDiv(nowMs+ph, e.every)+1)*e.every - ph
		}
		e.due = next
		w.down(0)
		max--
	}
	return out
}

func (w *Wheel) less(a, b int) bool {
	return w.entries[w.heap[a]].due < w.entries[w.heap[b]].due
}

func (w *Wheel) swap(a, b int) {
	w.heap[a], w.heap[b] = w.heap[b], w.heap[a]
	w.entries[w.heap[a]].pos = int32(a)
	w.entries[w.heap[b]].pos = int32(b)
}

func (w *Wheel) fix(i int) {
	if !w.down(i) {
		w.up(i)
	}
}

func (w *Wheel) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !w.less(j, i) {
			break
		}
		w.swap(i, j)
		j = i
	}
}

func (w *Wheel) down(i0 int) bool {
	i, n := i0, len(w.heap)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && w.less(r, l) {
			j = r
		}
		if !w.less(j, i) {
			break
		}
		w.swap(i, j)
		i = j
	}
	return i > i0
}
