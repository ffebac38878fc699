package scheduler

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openagents/runtime/pkg/lifecycle"
)

// Trigger sources (the source label of sa_scheduler_triggers_total).
const (
	SourceHeartbeat = "heartbeat"
	SourceRelay     = "relay"
	SourceFunded    = "funded"
)

// Reasons an event from a relay does not become a trigger (sa_scheduler_events_dropped_total).
const (
	DropBadSignature  = "bad_signature"
	DropInvalidZap    = "invalid_zap"
	DropSelf          = "self"
	DropNotSubscribed = "not_subscribed"
	// DropPublishFailed: the trigger's publish failed and the retry queue was full.
	DropPublishFailed = "publish_failed"
)

type metrics struct {
	agents         *prometheus.GaugeVec
	triggers       *prometheus.CounterVec
	relayConnected *prometheus.GaugeVec
	dropped        *prometheus.CounterVec
	lag            prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		agents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sa_scheduler_agents", Help: "Registered agents by lifecycle state.",
		}, []string{"lifecycle"}),
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sa_scheduler_triggers_total", Help: "Triggers published (before JetStream dedupe), by type and source.",
		}, []string{"type", "source"}),
		relayConnected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sa_scheduler_relay_connected", Help: "1 while the scheduler holds its subscriptions on the relay.",
		}, []string{"relay"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sa_scheduler_events_dropped_total", Help: "Relay events that did not become a trigger, and triggers dropped because their publish failed with the retry queue full, by reason.",
		}, []string{"reason"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sa_scheduler_heartbeat_lag_seconds", Help: "Heartbeat publish time minus its slot's due time.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(m.agents, m.triggers, m.relayConnected, m.dropped, m.lag)
	for _, st := range lifecycle.All {
		m.agents.WithLabelValues(string(st))
	}
	for _, r := range []string{DropBadSignature, DropInvalidZap, DropSelf, DropNotSubscribed, DropPublishFailed} {
		m.dropped.WithLabelValues(r)
	}
	return m
}
