package ticker

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	ticks       *prometheus.CounterVec
	steps       *prometheus.HistogramVec
	duration    prometheus.Histogram
	triggers    *prometheus.CounterVec
	coalesced   prometheus.Counter
	deadLetters *prometheus.CounterVec
	pending     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		ticks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sa_ticker_ticks_total",
			Help: "Ticks finished, by status (success, failure, timeout, skipped)."}, []string{"status"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sa_ticker_step_duration_seconds",
			Help: "Duration of each step of a tick.", Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"step"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sa_ticker_tick_duration_seconds",
			Help: "Duration of whole ticks.", Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}}),
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sa_ticker_triggers_total",
			Help: "Triggers accepted, by type."}, []string{"type"}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{Name: "sa_ticker_triggers_coalesced_total",
			Help: "Triggers that arrived while the agent had a tick in flight and joined its next tick."}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sa_ticker_dead_letters_total",
			Help: "Triggers rejected to the dead-letter subject, by reason."}, []string{"reason"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sa_ticker_consumer_pending",
			Help: "Triggers waiting in the ticker's consumer."}),
	}
	if reg != nil {
		reg.MustRegister(m.ticks, m.steps, m.duration, m.triggers, m.coalesced, m.deadLetters, m.pending)
	}
	return m
}
