//! Where the posting engine's batches spent their time: its counters
//! (`chainpay_posting_*`, `movements::engine::phases`) read from every
//! gateway's `/metrics` before and after a phase.

use std::collections::BTreeMap;

/// A batch's phases, in the order they run (`movements::engine::phases`).
const PHASES: [&str; 9] = [
    "begin", "parties", "keys", "check", "windows", "accounts", "decide", "write", "commit",
];

/// The token the bench's gateways serve `/metrics` to.
pub const METRICS_TOKEN: &str = "bench-metrics-token";

/// The posting counters, summed over the gateways at `bases`.
#[derive(Default)]
pub struct Sample(BTreeMap<String, f64>);

impl Sample {
    pub async fn read(client: &reqwest::Client, bases: &[String]) -> Self {
        let mut sample = Sample::default();
        for base in bases {
            let text = client
                .get(format!("{base}/metrics"))
                .bearer_auth(METRICS_TOKEN)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            let Ok(text) = text else { continue };
            for line in text.text().await.unwrap_or_default().lines() {
                let Some(metric) = line.strip_prefix("chainpay_posting_") else {
                    continue;
                };
                if let Some((name, value)) = metric.rsplit_once(' ') {
                    let value: f64 = value.parse().unwrap_or(0.0);
                    *sample.0.entry(name.to_owned()).or_default() += value;
                }
            }
        }
        sample
    }

    fn since(&self, before: &Sample, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0) - before.0.get(name).copied().unwrap_or(0.0)
    }

    /// Prints the batches' size and their mean wall time by phase.
    pub fn report(&self, before: &Sample) {
        let batches = self.since(before, "batches_total");
        if batches < 1.0 {
            return;
        }
        let transfers = self.since(before, "batch_transfers_total");
        let phases: Vec<String> = PHASES
            .iter()
            .map(|phase| {
                let name = format!("batch_phase_seconds_total{{phase=\"{phase}\"}}");
                let ms = self.since(before, &name) * 1e3 / batches;
                format!("{phase} {ms:.2}")
            })
            .collect();
        println!(
            "batches             : {batches:.0}, {:.1} transfers each; ms per batch: {}",
            transfers / batches,
            phases.join(", ")
        );
    }
}
