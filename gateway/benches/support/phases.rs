//! Where the posting engine's batches spent their time: its counters
//! (`chainpay_posting_*`, `movements::engine::phases`) read from every
//! gateway's `/metrics` before and after a phase.

use std::collections::BTreeMap;

use chainpay_gateway::metrics::POSTING_PHASES;

/// The token the bench's gateways serve `/metrics` to.
pub const METRICS_TOKEN: &str = "bench-metrics-token";

/// The posting counters, summed over the gateways at `bases`.
pub struct Sample {
    counters: BTreeMap<String, f64>,
    /// Whether every gateway answered.
    complete: bool,
}

impl Sample {
    pub async fn read(client: &reqwest::Client, bases: &[String]) -> Self {
        let mut sample = Sample {
            counters: BTreeMap::new(),
            complete: true,
        };
        for base in bases {
            match scrape(client, base).await {
                Ok(text) => sample.add(&text),
                Err(error) => {
                    eprintln!("{base}/metrics: {error}");
                    sample.complete = false;
                }
            }
        }
        sample
    }

    fn add(&mut self, text: &str) {
        for line in text.lines() {
            let Some(metric) = line.strip_prefix("chainpay_posting_") else {
                continue;
            };
            if let Some((name, value)) = metric.rsplit_once(' ') {
                match value.parse::<f64>() {
                    Ok(value) => *self.counters.entry(name.to_owned()).or_default() += value,
                    Err(_) => self.complete = false,
                }
            }
        }
    }

    fn since(&self, before: &Sample, name: &str) -> f64 {
        let at = |sample: &Sample| sample.counters.get(name).copied().unwrap_or(0.0);
        at(self) - at(before)
    }

    /// Prints the batches' size and their mean wall time by phase.
    pub fn report(&self, before: &Sample) {
        if !(before.complete && self.complete) {
            println!("batches             : unavailable (a gateway's /metrics did not answer)");
            return;
        }
        let batches = self.since(before, "batches_total");
        if batches < 1.0 {
            println!("batches             : none committed");
            return;
        }
        let transfers = self.since(before, "batch_transfers_total");
        let phases: Vec<String> = POSTING_PHASES
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

async fn scrape(client: &reqwest::Client, base: &str) -> reqwest::Result<String> {
    client
        .get(format!("{base}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}
