package nipsa

import (
	"strconv"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// Triggers of a 38002 schedule (custom:<kind> aside).
const (
	TriggerMention = "mention"
	TriggerDM      = "dm"
	TriggerZap     = "zap"
	// Only in a 38010 TickRequest: what woke the tick.
	TriggerHeartbeat = "heartbeat"
	TriggerManual    = "manual"
)

// ScheduleEvent builds the unsigned kind 38002 for s: content "", everything in tags.
func ScheduleEvent(s AgentSchedule) (nostr.Event, error) {
	if err := s.validate(); err != nil {
		return nostr.Event{}, err
	}
	tags := nostr.Tags{{"d", "schedule"}, {"active", strconv.FormatBool(s.Active)}}
	if s.HeartbeatSeconds > 0 {
		tags = append(tags, nostr.Tag{"heartbeat", itoa(s.HeartbeatSeconds)})
	}
	for _, t := range s.Triggers {
		tags = append(tags, nostr.Tag{"trigger", t})
	}
	if s.BusinessHours != "" {
		tags = append(tags, nostr.Tag{"business_hours", s.BusinessHours})
	}
	return nostr.Event{Kind: KindAgentSchedule, CreatedAt: nostr.Now(), Tags: tags, Content: ""}, nil
}

// ParseSchedule verifies ev and returns its schedule.
func ParseSchedule(ev *nostr.Event) (AgentSchedule, error) {
	if err := verify(ev, KindAgentSchedule); err != nil {
		return AgentSchedule{}, err
	}
	if ev.Content != "" {
		return AgentSchedule{}, fieldErr(KindAgentSchedule, "content", "must be empty")
	}
	return ParseScheduleTags(ev.Tags)
}

// ParseScheduleTags reads and validates the tags of a 38002 (the scheduler also keeps
// schedules as bare tags in the agent registry).
func ParseScheduleTags(tags nostr.Tags) (AgentSchedule, error) {
	const k = KindAgentSchedule
	r := tagReader{k, tags}
	if _, err := r.d("schedule"); err != nil {
		return AgentSchedule{}, err
	}
	var s AgentSchedule
	v, err := r.one("active", 1)
	if err != nil {
		return AgentSchedule{}, err
	}
	switch v[0] {
	case "true":
		s.Active = true
	case "false":
	default:
		return AgentSchedule{}, fieldErr(k, "active", "want true|false, got %q", v[0])
	}
	if v, ok, err := r.opt("heartbeat", 1); err != nil {
		return AgentSchedule{}, err
	} else if ok {
		// Zero is refused rather than read as "off": absence already means off, and a zero
		// interval in a scheduler is a busy loop.
		if s.HeartbeatSeconds, err = parseInt(k, "heartbeat", v[0], 1, 366*24*3600); err != nil {
			return AgentSchedule{}, err
		}
	}
	if s.Triggers, err = r.all("trigger"); err != nil {
		return AgentSchedule{}, err
	}
	if v, ok, err := r.opt("business_hours", 1); err != nil {
		return AgentSchedule{}, err
	} else if ok {
		s.BusinessHours = v[0]
	}
	return s, s.validate()
}

func (s AgentSchedule) validate() error {
	const k = KindAgentSchedule
	if s.HeartbeatSeconds < 0 {
		return fieldErr(k, "heartbeat", "must be > 0 seconds, got %d", s.HeartbeatSeconds)
	}
	seen := map[string]bool{}
	for _, t := range s.Triggers {
		if err := checkTrigger(k, t, false); err != nil {
			return err
		}
		if seen[t] {
			return fieldErr(k, "trigger", "%q listed twice", t)
		}
		seen[t] = true
	}
	if s.BusinessHours != "" {
		if _, err := ParseBusinessHours(s.BusinessHours); err != nil {
			return err
		}
	}
	return nil
}

// checkTrigger accepts mention|dm|zap|custom:<kind>, and heartbeat|manual too in a tick request.
func checkTrigger(kind int, t string, tick bool) error {
	switch t {
	case TriggerMention, TriggerDM, TriggerZap:
		return nil
	case TriggerHeartbeat, TriggerManual:
		if tick {
			return nil
		}
	}
	if rest, ok := strings.CutPrefix(t, "custom:"); ok {
		if _, err := parseInt(kind, "trigger", rest, 0, 65535); err != nil {
			return fieldErr(kind, "trigger", "custom:<kind> wants an event kind 0..65535, got %q", t)
		}
		return nil
	}
	if tick {
		return fieldErr(kind, "trigger", "want heartbeat|mention|dm|zap|manual|custom:<kind>, got %q", t)
	}
	return fieldErr(kind, "trigger", "want mention|dm|zap|custom:<kind>, got %q", t)
}

// BusinessHours is a parsed business_hours tag: the days it holds on and a daily window
// [Start, End) in minutes after midnight, UTC (SPEC days are UTC calendar days).
type BusinessHours struct {
	Days       [7]bool // indexed by time.Weekday (Sunday = 0)
	Start, End int     // minutes after midnight; End is exclusive and may be 24*60
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseBusinessHours reads "mon,tue 09:00-17:00": at least one day of mon..sun, HH:MM
// times, start before end. End may be 24:00 for "until midnight".
func ParseBusinessHours(s string) (BusinessHours, error) {
	const k, f = KindAgentSchedule, "business_hours"
	days, window, ok := strings.Cut(s, " ")
	if !ok || days == "" || window == "" || strings.Contains(window, " ") {
		return BusinessHours{}, fieldErr(k, f, "want \"mon,tue 09:00-17:00\", got %q", s)
	}
	var bh BusinessHours
	for _, d := range strings.Split(days, ",") {
		wd, ok := dayNames[d]
		if !ok {
			return BusinessHours{}, fieldErr(k, f, "unknown day %q (want mon..sun)", d)
		}
		if bh.Days[wd] {
			return BusinessHours{}, fieldErr(k, f, "day %q listed twice", d)
		}
		bh.Days[wd] = true
	}
	from, to, ok := strings.Cut(window, "-")
	if !ok {
		return BusinessHours{}, fieldErr(k, f, "want HH:MM-HH:MM, got %q", window)
	}
	var err error
	if bh.Start, err = parseHHMM(from, false); err != nil {
		return BusinessHours{}, err
	}
	if bh.End, err = parseHHMM(to, true); err != nil {
		return BusinessHours{}, err
	}
	if bh.Start >= bh.End {
		return BusinessHours{}, fieldErr(k, f, "start %s must be before end %s", from, to)
	}
	return bh, nil
}

func parseHHMM(s string, end bool) (int, error) {
	const k, f = KindAgentSchedule, "business_hours"
	bad := fieldErr(k, f, "want HH:MM, got %q", s)
	if len(s) != 5 || s[2] != ':' {
		return 0, bad
	}
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad
		}
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
		return 0, fieldErr(k, f, "%q is not a time of day", s)
	}
	return h*60 + m, nil
}

// Contains reports whether t (taken in UTC) falls inside the business hours.
func (bh BusinessHours) Contains(t time.Time) bool {
	t = t.UTC()
	if !bh.Days[t.Weekday()] {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	return m >= bh.Start && m < bh.End
}

// String renders bh in the tag form ("mon,tue 09:00-17:00"), days from mon to sun.
func (bh BusinessHours) String() string {
	var days []string
	for _, wd := range []time.Weekday{1, 2, 3, 4, 5, 6, 0} {
		if bh.Days[wd] {
			days = append(days, strings.ToLower(wd.String()[:3]))
		}
	}
	hhmm := func(m int) string {
		return strconv.Itoa(m/600) + strconv.Itoa(m/60%10) + ":" + strconv.Itoa(m%60/10) + strconv.Itoa(m%10)
	}
	return strings.Join(days, ",") + " " + hhmm(bh.Start) + "-" + hhmm(bh.End)
}
