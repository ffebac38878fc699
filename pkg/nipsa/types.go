package nipsa

// Goal statuses.
const (
	GoalActive    = "active"
	GoalPaused    = "paused"
	GoalCompleted = "completed"
	GoalCancelled = "cancelled"
)

type Goal struct {
	ID          string  `json:"id"`
	Description string  `json:"description"`
	Priority    int     `json:"priority"`
	CreatedAt   int64   `json:"created_at"`
	Status      string  `json:"status"`
	Progress    float64 `json:"progress"`
}

type Memory struct {
	Type      string `json:"type"`
	Content   string `json:"content"`
	Timestamp int64  `json:"timestamp"`
}

type BudgetLimits struct {
	DailyLimitSats   int64 `json:"daily_limit_sats"`
	PerTickLimitSats int64 `json:"per_tick_limit_sats"`
	ReservedSats     int64 `json:"reserved_sats"`
}

type BudgetState struct {
	Limits          BudgetLimits `json:"limits"`
	CurrentDate     string       `json:"current_date"` // YYYY-MM-DD, UTC
	DailySpentSats  int64        `json:"daily_spent_sats"`
	TickSpentSats   int64        `json:"tick_spent_sats"`
	ViolationsToday int64        `json:"violations_today"`
}

// AgentState is the plaintext sealed into kind 38001.
type AgentState struct {
	Goals             []Goal         `json:"goals"`
	Memory            []Memory       `json:"memory"`
	PendingTasks      []string       `json:"pending_tasks"`
	Beliefs           map[string]any `json:"beliefs"`
	WalletBalanceSats int64          `json:"wallet_balance_sats"`
	LastTick          int64          `json:"last_tick"`
	TickCount         int64          `json:"tick_count"`
	Budget            BudgetState    `json:"budget"`
}

// AgentProfile is kind 38000.
type AgentProfile struct {
	Name          string   `json:"name"`
	About         string   `json:"about"`
	Picture       string   `json:"picture,omitempty"`
	Capabilities  []string `json:"capabilities"`
	AutonomyLevel string   `json:"autonomy_level"` // supervised|bounded|autonomous
	Version       string   `json:"version"`
	// Tags
	Threshold int    `json:"-"`
	Signers   int    `json:"-"` // n of threshold t-of-n
	Signer    string `json:"-"` // hex pubkey
	Operator  string `json:"-"` // hex pubkey
	LUD16     string `json:"-"`
}

// AgentSchedule is kind 38002 (everything in tags).
type AgentSchedule struct {
	Active           bool
	HeartbeatSeconds int64    // 0: no heartbeat
	Triggers         []string // mention|dm|zap|custom:<kind>
	BusinessHours    string   // optional, "mon,tue 09:00-17:00"
}

// PublicGoals is kind 38003.
type PublicGoals struct {
	Goals []Goal `json:"goals"`
}

// Tick statuses.
const (
	TickSuccess = "success"
	TickFailure = "failure"
	TickTimeout = "timeout"
	TickSkipped = "skipped"
)

// TickRequest is kind 38010.
type TickRequest struct {
	TickID  string
	Runner  string // hex pubkey
	Trigger string // heartbeat|mention|dm|zap|manual|custom:<kind>
	Agent   string // hex pubkey (p tag)
	EventID string // optional e tag
}

// TickAction is one executed (or attempted) action in a TickResult.
type TickAction struct {
	Type    string         `json:"type"`
	Details map[string]any `json:"details,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// TickResult is kind 38011.
type TickResult struct {
	TickID         string
	RequestID      string // 38010 event id
	Runner         string
	Status         string
	DurationMS     int64
	ActionCount    int
	TrajectoryHash string // optional
	Content        TickResultContent
}

// TickResultContent is the plain JSON content of 38011. Session and Triggers are this
// project's additions: the trajectory session id and the trigger ids the tick answered.
type TickResultContent struct {
	TokensIn     int64        `json:"tokens_in"`
	TokensOut    int64        `json:"tokens_out"`
	CostSats     int64        `json:"cost_sats"`
	GoalsUpdated int          `json:"goals_updated"`
	Actions      []TickAction `json:"actions"`
	Error        string       `json:"error,omitempty"`
	Session      string       `json:"session,omitempty"`
	Triggers     []string     `json:"triggers,omitempty"`
}

// TrajectorySession is kind 38030.
type TrajectorySession struct {
	SessionID      string `json:"session_id"`
	TickID         string `json:"-"`
	StartedAt      int64  `json:"started_at"`
	EndedAt        int64  `json:"ended_at,omitempty"`
	Model          string `json:"model"`
	Visibility     string `json:"-"` // public|private
	TotalEvents    int    `json:"total_events"`
	TrajectoryHash string `json:"trajectory_hash,omitempty"`
}

// Trajectory steps.
const (
	StepToolUse    = "ToolUse"
	StepToolResult = "ToolResult"
	StepMessage    = "Message"
	StepThinking   = "Thinking"
)

// TrajectoryEvent is kind 38031. Content is the exact JSON string published (the hash is over
// these strings), so it is kept verbatim.
type TrajectoryEvent struct {
	SessionID string
	TickID    string
	Seq       int
	Step      string
	Content   string
}
