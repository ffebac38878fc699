package payer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the payer's, declared once; labels are bounded (results, purposes, reasons).
type metrics struct {
	payments       *prometheus.CounterVec // result: succeeded|failed|in_flight|refused|duplicate
	satsSpent      *prometheus.CounterVec // purpose
	satsReceived   prometheus.Counter
	fees           prometheus.Counter
	budgetRefusals *prometheus.CounterVec // reason: budget.Reason
	inflight       prometheus.Gauge
	reconcile      *prometheus.CounterVec // outcome
	agents         *prometheus.GaugeVec   // lifecycle
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry() // metrics still work, nobody scrapes them
	}
	f := promauto.With(reg)
	return &metrics{
		payments: f.NewCounterVec(prometheus.CounterOpts{Name: "sa_payer_payments_total",
			Help: "Pay requests answered, by result."}, []string{"result"}),
		satsSpent: f.NewCounterVec(prometheus.CounterOpts{Name: "sa_payer_sats_spent_total",
			Help: "Sats paid out in succeeded payments (fees excluded), by purpose."}, []string{"purpose"}),
		satsReceived: f.NewCounter(prometheus.CounterOpts{Name: "sa_payer_sats_received_total",
			Help: "Sats received on funding invoices."}),
		fees: f.NewCounter(prometheus.CounterOpts{Name: "sa_payer_fees_sats_total",
			Help: "Routing fees paid, sats."}),
		budgetRefusals: f.NewCounterVec(prometheus.CounterOpts{Name: "sa_payer_budget_refusals_total",
			Help: "Payments refused by the budget, by reason."}, []string{"reason"}),
		inflight: f.NewGauge(prometheus.GaugeOpts{Name: "sa_payer_inflight_payments",
			Help: "Payments whose outcome is not yet known (reservations held)."}),
		reconcile: f.NewCounterVec(prometheus.CounterOpts{Name: "sa_payer_reconcile_total",
			Help: "Reconciliations of non-final payments, by outcome."}, []string{"outcome"}),
		agents: f.NewGaugeVec(prometheus.GaugeOpts{Name: "sa_payer_agents",
			Help: "Agents by lifecycle, as of the last reconciliation pass."}, []string{"lifecycle"}),
	}
}
