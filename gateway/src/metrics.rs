//! Prometheus metrics, one registry per running app (tests run several apps
//! in one process, so nothing here is global).

use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};

/// The phases of a posting engine batch, in the order they run, as the
/// `phase` label of `chainpay_posting_batch_phase_seconds_total` names them
/// (`movements::engine::phases`).
pub const POSTING_PHASES: [&str; 9] = [
    "begin", "parties", "keys", "check", "windows", "accounts", "decide", "write", "commit",
];

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_latency: HistogramVec,
    pub transfers: IntCounterVec,
    /// Unauthenticated webhook calls refused (counted, never stored).
    pub rejected_webhooks: IntCounterVec,
    /// Discrepancies reconciliation found, by check.
    pub discrepancies: IntCounterVec,
    /// Batches the posting engine committed.
    pub posting_batches: IntCounter,
    /// Transfer requests in those batches.
    pub posting_batch_transfers: IntCounter,
    /// Those batches' wall time, summed by phase (`movements::engine`).
    pub posting_phase_seconds: CounterVec,
    /// Background job passes that failed, by job and why (`jobs`).
    pub job_failures: IntCounterVec,
}

impl Metrics {
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new_custom(Some("chainpay".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["method", "route", "status"],
        )?;
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route"],
        )?;
        let transfers = IntCounterVec::new(
            Opts::new(
                "transfers_total",
                "Money movements by type, currency and outcome",
            ),
            &["type", "currency", "outcome"],
        )?;
        let rejected_webhooks = IntCounterVec::new(
            Opts::new(
                "rejected_webhooks_total",
                "Webhook calls refused before they were read, by webhook and reason",
            ),
            &["webhook", "reason"],
        )?;
        let discrepancies = IntCounterVec::new(
            Opts::new(
                "reconciliation_discrepancies_total",
                "Discrepancies found by reconciliation runs, by check",
            ),
            &["check"],
        )?;
        let posting_batches = IntCounter::new(
            "posting_batches_total",
            "Transfer batches the posting engine committed",
        )?;
        let posting_batch_transfers = IntCounter::new(
            "posting_batch_transfers_total",
            "Transfer requests in the batches the posting engine committed",
        )?;
        let posting_phase_seconds = CounterVec::new(
            Opts::new(
                "posting_batch_phase_seconds_total",
                "Wall time of committed transfer batches, summed by phase",
            ),
            &["phase"],
        )?;
        let job_failures = IntCounterVec::new(
            Opts::new(
                "job_pass_failures_total",
                "Background job passes that failed (error) or outlasted their patience (abandoned), by job",
            ),
            &["job", "why"],
        )?;
        for phase in POSTING_PHASES {
            // Every phase's series from the start, at zero.
            posting_phase_seconds.with_label_values(&[phase]);
        }
        registry.register(Box::new(job_failures.clone()))?;
        registry.register(Box::new(posting_batches.clone()))?;
        registry.register(Box::new(posting_batch_transfers.clone()))?;
        registry.register(Box::new(posting_phase_seconds.clone()))?;
        registry.register(Box::new(discrepancies.clone()))?;
        registry.register(Box::new(rejected_webhooks.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_latency.clone()))?;
        registry.register(Box::new(transfers.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_latency,
            transfers,
            rejected_webhooks,
            discrepancies,
            posting_batches,
            posting_batch_transfers,
            posting_phase_seconds,
            job_failures,
        })
    }

    /// Counts a webhook call refused for `reason` (a bad token, say).
    pub fn reject_webhook(&self, webhook: &str, reason: &str) {
        self.rejected_webhooks
            .with_label_values(&[webhook, reason])
            .inc();
    }

    /// Counts one discrepancy found by the `check` of a reconciliation run.
    pub fn discrepancy(&self, check: &str) {
        self.discrepancies.with_label_values(&[check]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}
