//! Counters and histograms of the send path, in Prometheus text format at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub channel: String,
    /// sent, retry, rate_limited, failed, dead, expired, skipped, postponed
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    pub channel: String,
}

pub struct Metrics {
    registry: Registry,
    pub outcomes: Family<OutcomeLabels, Counter>,
    pub send_seconds: Family<ChannelLabels, Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("loa");
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "delivery_outcomes",
            "Delivery attempts by channel and outcome (sent, retry, rate_limited, failed, dead, expired, skipped, postponed)",
            outcomes.clone(),
        );
        let send_seconds = Family::<ChannelLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        });
        registry.register(
            "send_duration_seconds",
            "Time a provider took to answer one send",
            send_seconds.clone(),
        );
        Metrics {
            registry,
            outcomes,
            send_seconds,
        }
    }
}

impl Metrics {
    pub fn count(&self, channel: &str, outcome: &str, n: u64) {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                channel: channel.to_string(),
                outcome: outcome.to_string(),
            })
            .inc_by(n);
    }

    pub fn observe_send(&self, channel: &str, seconds: f64) {
        self.send_seconds
            .get_or_create(&ChannelLabels {
                channel: channel.to_string(),
            })
            .observe(seconds);
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
