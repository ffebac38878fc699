package scheduler

import (
	"crypto/rand"
	"math"
	mrand "math/rand/v2"
	"sort"
	"testing"
)

func randKey() [32]byte {
	var k [32]byte
	_, _ = rand.Read(k[:])
	return k
}

// Phases spread a fleet evenly over the interval, so a million agents on the same heartbeat do
// not all fire in the same second.
func TestPhaseSpreadsFleet(t *testing.T) {
	const n, every, buckets = 20000, 900_000, 10
	var count [buckets]int
	for range n {
		p := Phase(randKey(), every)
		if p < 0 || p >= every {
			t.Fatalf("phase %d outside [0,%d)", p, every)
		}
		count[p*buckets/every]++
	}
	for i, c := range count {
		if math.Abs(float64(c-n/buckets)) > 0.1*n/buckets {
			t.Errorf("bucket %d holds %d of %d agents", i, c, n)
		}
	}
}

func TestSlotArithmetic(t *testing.T) {
	k := randKey()
	const every = 15_000
	for _, now := range []int64{0, 1, 14_999, 1_700_000_000_123, -5} {
		s := SlotAt(k, every, now)
		if d := SlotDue(k, every, s); d > now || SlotDue(k, every, s+1) <= now {
			t.Errorf("now %d: slot %d due %d, next due %d", now, s, d, SlotDue(k, every, s+1))
		}
		if SlotAt(k, every, SlotDue(k, every, s)) != s {
			t.Errorf("slot %d does not hold at its own due time", s)
		}
	}
}

// The heap pops exactly the due entries in due order, against a reference model, through
// random sets, reschedules and removals.
func TestWheelMatchesModel(t *testing.T) {
	w := NewWheel(0)
	type st struct{ every, due int64 }
	model := map[[32]byte]*st{}
	var keys [][32]byte
	now := int64(1_700_000_000_000)
	rng := mrand.New(mrand.NewPCG(1, 2))
	for step := range 3000 {
		switch r := rng.IntN(10); {
		case r < 5 || len(keys) == 0:
			k := randKey()
			keys = append(keys, k)
			every := int64(1000 * (1 + rng.IntN(30)))
			w.Set(k, every, now, -1)
			model[k] = &st{every, SlotDue(k, every, SlotAt(k, every, now)+1)}
		case r < 7:
			k := keys[rng.IntN(len(keys))]
			every := int64(1000 * (1 + rng.IntN(30)))
			w.Set(k, every, now, -1)
			if m, ok := model[k]; !ok || m.every != every {
				model[k] = &st{every, SlotDue(k, every, SlotAt(k, every, now)+1)}
			}
		case r < 8:
			k := keys[rng.IntN(len(keys))]
			w.Remove(k)
			delete(model, k)
		default:
			now += int64(rng.IntN(5000))
			got := w.PopDue(now, math.MaxInt, nil)
			var want []Due
			for k, m := range model {
				if m.due <= now {
					want = append(want, Due{Pub: k, Slot: SlotAt(k, m.every, m.due), DueMs: m.due})
					m.due = SlotDue(k, m.every, SlotAt(k, m.every, now)+1)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("step %d: popped %d, want %d", step, len(got), len(want))
			}
			for i := 1; i < len(got); i++ {
				if got[i].DueMs < got[i-1].DueMs {
					t.Fatalf("step %d: popped out of order", step)
				}
			}
			sort.Slice(got, func(i, j int) bool { return string(got[i].Pub[:]) < string(got[j].Pub[:]) })
			sort.Slice(want, func(i, j int) bool { return string(want[i].Pub[:]) < string(want[j].Pub[:]) })
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("step %d: popped %+v, want %+v", step, got[i], want[i])
				}
			}
		}
		if w.Len() != len(model) {
			t.Fatalf("step %d: wheel holds %d, model %d", step, w.Len(), len(model))
		}
	}
}

// A loop that fell far behind fires each agent once (its latest slot), not once per missed
// slot; a catch-up entry fires the current slot only if it came due after the mark.
func TestWheelNoBurst(t *testing.T) {
	k := randKey()
	const every = 1000
	now := int64(1_700_000_000_000)
	w := NewWheel(1)
	w.Set(k, every, now, -1)
	late := now + 10*every
	got := w.PopDue(late, 100, nil)
	if len(got) != 1 {
		t.Fatalf("popped %d after ten missed slots, want 1", len(got))
	}
	if next, _ := w.NextDue(); next <= late || next > late+every {
		t.Fatalf("next due %d, want within one interval after %d", next, late)
	}

	// Catch-up: the current slot came due after the mark.
	w2 := NewWheel(1)
	cur := SlotAt(k, every, late)
	w2.Set(k, every, late, SlotDue(k, every, cur)-1)
	if got := w2.PopDue(late, 100, nil); len(got) != 1 || got[0].Slot != cur {
		t.Fatalf("catch-up popped %+v, want slot %d", got, cur)
	}
	if got := w2.PopDue(late, 100, nil); len(got) != 0 {
		t.Fatalf("catch-up fired twice: %+v", got)
	}
	// Not after the mark: nothing to catch up.
	w3 := NewWheel(1)
	w3.Set(k, every, late, late)
	if got := w3.PopDue(late, 100, nil); len(got) != 0 {
		t.Fatalf("fired a slot already covered by the mark: %+v", got)
	}
	// Same interval keeps the due time; another interval reschedules.
	before, _ := w3.NextDue()
	w3.Set(k, every, late+every/2, -1)
	if after, _ := w3.NextDue(); after != before {
		t.Fatalf("unchanged schedule moved its due time %d -> %d", before, after)
	}
	w3.Set(k, 4*every, late, -1)
	if iv, _ := w3.Interval(k); iv != 4*every {
		t.Fatalf("interval %d after reschedule", iv)
	}
}
